"""The named defenses a victim can train with, and the spec strings that pick them.

A defense spec ('none', 'hflip+crop_pad', 'jpeg:quality=30', 'pgd_at:steps=3')
names what the unauthorized trainer does besides plain training. `get(spec)`
checks every name and parameter against the registry below and returns a
`Defense`, which victim training applies in three places:

* preprocessing (jpeg, gaussian_blur, median_filter, bit_depth, grayscale,
  center_crop_resize) runs once over the training images; with `eval=1` it also
  runs on val/test images (the default for grayscale and the crops, which a
  pipeline applies to every image; the "squeezing" defenses default to
  training data only, as in the shortcut-squeezing literature);
* per-batch transforms (random_crop_resize, crop_pad, hflip, rotate, cutout,
  and the target-mixing mixup, cutmix) run in spec order on every batch, each
  with its own key (random_crop_resize evaluates with a center crop of the
  mean scale when `eval=1`);
* pgd_at replaces each batch by its PGD adversarial version inside the step.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax

from salm_jax.evaluation.defenses import adversarial, augment, preprocess, spec as spec_lib

PREPROCESS = "preprocess"   # fn(x, **p), once over the data
RANDOM = "random"           # fn(x, key, **p), per batch
MIX = "mix"                 # fn(x, targets, key, **p) -> (x, targets), per batch
ADVERSARIAL = "adversarial"


@dataclasses.dataclass(frozen=True)
class _Entry:
  kind: str
  fn: Callable[..., Any] | None
  params: dict[str, tuple[type, float, float, float]]  # name -> (type, default, min, max)
  eval_default: int | None = None  # preprocessing only: apply to val/test by default?


def _p(kind, default, lo, hi):
  return (kind, default, lo, hi)


_REGISTRY: dict[str, _Entry] = {
    "crop_pad": _Entry(RANDOM, augment.crop_pad, {"padding": _p(int, 4, 0, 64)}),
    "hflip": _Entry(RANDOM, augment.hflip, {"p": _p(float, 0.5, 0, 1)}),
    "rotate": _Entry(RANDOM, augment.rotate, {"degrees": _p(float, 15.0, 0, 180)}),
    "cutout": _Entry(RANDOM, augment.cutout, {"frac": _p(float, 0.5, 0, 1)}),
    "mixup": _Entry(MIX, augment.mixup, {"alpha": _p(float, 1.0, 1e-3, 100)}),
    "cutmix": _Entry(MIX, augment.cutmix, {"alpha": _p(float, 1.0, 1e-3, 100)}),
    "jpeg": _Entry(PREPROCESS, preprocess.jpeg, {"quality": _p(int, 75, 1, 100)}, 0),
    "gaussian_blur": _Entry(PREPROCESS, preprocess.gaussian_blur,
                            {"sigma": _p(float, 1.0, 1e-3, 10), "kernel": _p(int, 3, 1, 15)}, 0),
    "median_filter": _Entry(PREPROCESS, preprocess.median_filter, {"size": _p(int, 3, 1, 9)}, 0),
    "bit_depth": _Entry(PREPROCESS, preprocess.bit_depth, {"bits": _p(int, 4, 1, 8)}, 0),
    "grayscale": _Entry(PREPROCESS, preprocess.grayscale, {}, 1),
    "center_crop_resize": _Entry(PREPROCESS, preprocess.center_crop_resize,
                                 {"scale": _p(float, 0.875, 0.05, 1)}, 1),
    "random_crop_resize": _Entry(RANDOM, preprocess.random_crop_resize,
                                 {"min_scale": _p(float, 0.75, 0.05, 1)}, 1),
    "pgd_at": _Entry(ADVERSARIAL, None, {"eps": _p(float, 8 / 255, 0, 1),
                                         "steps": _p(int, 7, 1, 100),
                                         "step_size": _p(float, 2 / 255, 0, 1)}),
}


def names() -> tuple[str, ...]:
  """Every defense name a spec may use (plus 'none')."""
  return tuple(sorted(_REGISTRY))


def default_params(name: str) -> dict[str, float]:
  return {k: v[1] for k, v in _entry(name).params.items()}


def _entry(name: str) -> _Entry:
  if name not in _REGISTRY:
    raise ValueError(f"Unknown defense {name!r}; available: none, {', '.join(names())}.")
  return _REGISTRY[name]


def _check_params(part: spec_lib.Part) -> dict[str, Any]:
  """The part's parameters, typed and range-checked, with defaults filled in."""
  entry = _entry(part.name)
  allowed = dict(entry.params)
  if entry.eval_default is not None:
    allowed["eval"] = (int, entry.eval_default, 0, 1)
  out = {k: v[1] for k, v in allowed.items()}
  for key, value in part.params:
    if key not in allowed:
      raise ValueError(f"Defense {part.name!r} has no parameter {key!r}; "
                       f"it takes {sorted(allowed) or 'none'}.")
    kind, _, lo, hi = allowed[key]
    if kind is int and value != int(value):
      raise ValueError(f"Defense {part.name!r}: {key} must be an integer, got {value}.")
    if not lo <= value <= hi:
      raise ValueError(f"Defense {part.name!r}: {key}={value} is outside [{lo}, {hi}].")
    out[key] = kind(value)
  return out


@dataclasses.dataclass(frozen=True, eq=False)
class Defense:
  """A checked defense spec: what to do to the data, per batch and inside the step.

  Equal (and hashing equal) when the checked parts are, so compiled training
  steps can be cached per defense.
  """
  spec: str
  parts: tuple[tuple[str, dict[str, Any]], ...]

  def _canonical(self) -> tuple:
    return tuple((n, tuple(sorted(p.items()))) for n, p in self.parts)

  def __eq__(self, other) -> bool:
    return isinstance(other, Defense) and self._canonical() == other._canonical()

  def __hash__(self) -> int:
    return hash(self._canonical())

  @property
  def has_train_preprocessing(self) -> bool:
    return bool(self._of_kind(PREPROCESS))

  @property
  def has_eval_preprocessing(self) -> bool:
    return any(p.get("eval", 0) for _, p in self.parts)

  @property
  def name(self) -> str:
    return self.spec

  def _of_kind(self, *kinds):
    return [(n, p) for n, p in self.parts if _REGISTRY[n].kind in kinds]

  @property
  def adversarial(self) -> dict[str, Any] | None:
    """PGD parameters (eps, steps, step_size) if the spec has pgd_at, else None."""
    adv = self._of_kind(ADVERSARIAL)
    return dict(adv[0][1]) if adv else None

  @property
  def has_batch_transform(self) -> bool:
    return bool(self._of_kind(RANDOM, MIX))

  def preprocess_train(self, x: jax.Array) -> jax.Array:
    """The once-over preprocessing of training images (float NHWC in [0, 1])."""
    for name, params in self._of_kind(PREPROCESS):
      x = _REGISTRY[name].fn(x, **_without_eval(params))
    return x

  def preprocess_eval(self, x: jax.Array) -> jax.Array:
    """What the pipeline does to val/test images (the `eval=1` parts)."""
    for name, params in self.parts:
      if not params.get("eval", 0):
        continue
      if name == "random_crop_resize":
        x = preprocess.center_crop_resize(x, scale=(1.0 + params["min_scale"]) / 2)
      else:
        x = _REGISTRY[name].fn(x, **_without_eval(params))
    return x

  def batch_transform(self, x: jax.Array, targets: jax.Array,
                      key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The per-batch random transforms, in spec order, each with its own key."""
    for i, (name, params) in enumerate(self._of_kind(RANDOM, MIX)):
      entry, k = _REGISTRY[name], jax.random.fold_in(key, i)
      if entry.kind == MIX:
        x, targets = entry.fn(x, targets, k, **params)
      else:
        x = entry.fn(x, k, **_without_eval(params))
    return x, targets

  def attack(self, loss_of_input: Callable[[jax.Array], jax.Array], x: jax.Array,
             key: jax.Array) -> jax.Array:
    """The PGD batch for pgd_at; `x` itself when the spec has no pgd_at."""
    params = self.adversarial
    return x if params is None else adversarial.pgd(loss_of_input, x, key, **params)


def _without_eval(params: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in params.items() if k != "eval"}


@functools.lru_cache(maxsize=256)
def get(spec: str) -> Defense:
  """Parses and checks a spec string; raises ValueError naming the problem."""
  parts = tuple((p.name, _check_params(p)) for p in spec_lib.parse(spec))
  if sum(_REGISTRY[n].kind == ADVERSARIAL for n, _ in parts) > 1:
    raise ValueError(f"Defense spec {spec!r}: pgd_at can appear only once.")
  return Defense(spec=spec.strip() or "none", parts=parts)


def check_all(specs) -> tuple[str, ...]:
  """Checks a list of specs up front (before hours of training); returns them."""
  for s in specs:
    get(s)
  return tuple(specs)


__all__ = ["Defense", "get", "names", "default_params", "check_all"]
