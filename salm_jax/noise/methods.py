"""Which noise a run makes: `config.noise.method`, one of `METHODS`.

SALM must be compared with baselines in the same pipeline (same data,
quantization, files, victims and report), so every method returns the same
`generator.GeneratorResult` and `protect` calls `generate_noise` whatever the
method. Each baseline lives in its own module; none is a branch inside SALM's
generator:

  salm     `generator.generate`: SALM; EM is mask_ratio = 1 (configs/em.py)
  ops      `ops.py`: One-Pixel Shortcut (Wu et al., ICLR 2023), model-free
  random   `random_noise.py`: random ±ε signs on SALM's (or a random) support
  flat     `flat_support.py`: class-wise ±ε patterns on the flattest pixels, model-free
  lattice  `lattice.py`: class-wise sparse textures (±ε dots on a lattice), model-free
  adversarial `adversarial.py`: class-wise error-*maximizing* noise on SALM's
           class support, from a surrogate trained on clean images (no min-min)
  ar       `ar.py`: autoregressive poisons (Sandoval-Segura et al., NeurIPS 2022), model-free
  lsp      `lsp.py`: linearly separable synthetic noise (Yu et al., KDD 2022), model-free

Model-free methods make their noise in one pass: they train no surrogate
(`surrogate`, `surrogate_state` are None), write no checkpoints and no
per-round metrics (`history` is empty, `rounds` 0).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import ml_collections
import numpy as np

from salm_jax import tasks
from salm_jax.data import dataset
from salm_jax.noise.baselines import adversarial
from salm_jax.noise.baselines import ar
from salm_jax.noise.baselines import lsp
from salm_jax.noise.baselines import ops
from salm_jax.noise.baselines import random_noise
from salm_jax.noise.salm import generator
from salm_jax.noise.textures import flat_support
from salm_jax.noise.textures import lattice

DEFAULT = "salm"


@dataclasses.dataclass
class ModelFreeResult(generator.GeneratorResult):
  """A baseline's result: no surrogate, no rounds, plus what the manifest should record."""
  details: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Method:
  """How a method makes noise, the L∞ bound its noise obeys (float pixel units), and its
  config-only checks (`check(config.noise)`, run before a stage writes anything)."""
  generate: Callable[..., generator.GeneratorResult]
  linf_bound: Callable[[ml_collections.ConfigDict], float]
  model_free: bool
  check: Callable[[ml_collections.ConfigDict], None] = lambda noise: None
  takes_uint8: bool = False  # keeps uint8 images as they are (else converted to float32 first)


def _noise_epsilon(config: ml_collections.ConfigDict) -> float:
  """The L∞ bound of every method that obeys the user's `noise.epsilon`."""
  return float(config.noise.epsilon)


def _salm(config, images, labels, **kwargs) -> generator.GeneratorResult:
  return generator.generate(config, images, labels, **kwargs)


def _model_free(make_noise) -> Callable[..., ModelFreeResult]:
  """Wraps `make_noise(config, images, labels, task=, num_classes=) -> (delta, masks, details)`.

  The generator's other arguments (checkpoints, metrics, progress, mesh,
  per-round callback) have nothing to act on in a one-pass method.
  """
  def generate(config, images, labels, *, task, num_classes, **_unused) -> ModelFreeResult:
    labels = np.asarray(labels)
    check_inputs(images, labels, task, num_classes)
    delta, masks, details = make_noise(config, images, labels, task=task,
                                       num_classes=num_classes)
    return ModelFreeResult(delta=delta, masks=masks, history=[], rounds=0, stopped_early=False,
                           surrogate=None, surrogate_state=None, details=details)
  return generate


METHODS: dict[str, Method] = {
    "salm": Method(_salm, _noise_epsilon, model_free=False,
                   check=generator.check_settings, takes_uint8=True),
    "ops": Method(_model_free(ops.make_noise),
                  lambda config: float(config.noise.get("ops", ops.default_config()).epsilon),
                  model_free=True),
    "random": Method(_model_free(random_noise.make_noise),
                     _noise_epsilon, model_free=True, check=random_noise.check_settings),
    "flat": Method(_model_free(flat_support.make_noise),
                   _noise_epsilon, model_free=True,
                   check=flat_support.check_config),
    "lattice": Method(_model_free(lattice.make_noise),
                      _noise_epsilon, model_free=True,
                      check=lattice.check_config),
    "adversarial": Method(adversarial.generate, _noise_epsilon,
                          model_free=False, check=adversarial.check_settings),
    "ar": Method(_model_free(ar.make_noise), ar.linf_bound, model_free=True,
                 check=ar.check_config),
    "lsp": Method(_model_free(lsp.make_noise), lsp.linf_bound, model_free=True,
                  check=lsp.check_config),
}


def method_name(config: ml_collections.ConfigDict) -> str:
  """`config.noise.method` (configs without the field are SALM runs)."""
  return config.noise.get("method", DEFAULT)


def get(name: str) -> Method:
  if name not in METHODS:
    raise ValueError(f"Unknown noise.method {name!r}; expected one of {sorted(METHODS)}.")
  return METHODS[name]


def check_settings(config: ml_collections.ConfigDict) -> None:
  """The method's config-only checks, run before a stage writes anything."""
  get(method_name(config)).check(config.noise)


def linf_bound(config: ml_collections.ConfigDict) -> float:
  """The method's own L∞ bound: what quantization enforces and the manifest states as ε.

  SALM and the random control obey `noise.epsilon`; OPS sets pixels to 0 or 1
  and obeys `noise.ops.epsilon` (1.0 by default), not `noise.epsilon`.
  """
  return get(method_name(config)).linf_bound(config)


def generate_noise(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray,
                   *, task: str, num_classes: int, checkpoint_dir: str | None = None,
                   metrics_path: str | None = None, progress: bool = True, mesh=None,
                   on_round: Callable[[dict], None] | None = None,
                   expand: bool = True) -> generator.GeneratorResult:
  """Noise for `images` by `config.noise.method`; arguments as `generator.generate` (only SALM
  heeds `expand`)."""
  method = get(method_name(config))
  if not method.takes_uint8:
    images = dataset.to_float(images)
  return method.generate(config, images, labels, task=task, num_classes=num_classes,
                         checkpoint_dir=checkpoint_dir, metrics_path=metrics_path,
                         progress=progress, mesh=mesh, on_round=on_round, expand=expand)


def manifest_fields(config: ml_collections.ConfigDict,
                    result: generator.GeneratorResult) -> dict[str, Any]:
  """What the manifest records about the method: name, effective ε and mask ratio, surrogate.

  For a baseline the mask ratio is the fraction of pixels its noise may
  touch (its masks' mean), since `noise.mask_ratio` does not drive it.
  """
  name = method_name(config)
  fields = {"method": name, "epsilon": linf_bound(config)}
  if get(name).model_free:
    fields.update(mask_ratio=float(np.mean(result.masks)), surrogate=None)
  else:
    ensemble = list(config.surrogate.get("ensemble", ()))
    fields["surrogate"] = "ensemble:" + "+".join(ensemble) if ensemble else config.surrogate.model
  fields.update(getattr(result, "details", {}))
  return fields


def check_inputs(images: np.ndarray, labels: np.ndarray, task: str, num_classes: int) -> None:
  """The generator's input checks, which every method needs (SALM runs them in `validate`)."""
  tasks.check_task(task)
  generator.check_data(images, labels, task, num_classes)
