"""Class-wise *error-maximizing* sparse noise: SALM's support, an adversarial pattern.

Why it is here: on the paper-sized BreastMNIST rows (docs/RESULTS.md) random
±ε signs on SALM's class-shared support protected better than the min-min
optimized signs on the same pixels. One reading is that an error-minimizing
class pattern drifts towards features the surrogate finds easy to learn
*together with* the lesion, and so is partly redundant with the real signal.
Adversarial poisoning (Fowl et al., NeurIPS 2021) goes the other way: noise
that makes each class look like another class to a model trained on *clean*
data plants that other class's non-robust features under the wrong label, and
a victim that learns them misreads clean test images. This module tests that
idea with SALM's sparsity kept exactly:

  1. a surrogate is trained on the clean images (`adversarial.pretrain_steps`),
     its BatchNorm statistics recalibrated on them;
  2. each class's support is the top `mask_ratio` of its summed clean saliency
     (the same class-shared masks as class-wise SALM);
  3. one δ per class is moved by masked PGD *towards the next class*
     (label (y + 1) mod C, a targeted attack) on that support, within ε,
     for `adversarial.passes` passes over the data; the surrogate is never
     trained on the noise (no min-min).

It is a method beside SALM (`noise.method='adversarial'`), built from the
generator's public pieces (compiled steps, `prepare`, `rounds.pgd_pass`); SALM's
own loop has no branch for it. A pass is cheap, so runs are not
checkpointed: an interrupted run starts again.
"""
from __future__ import annotations

import time

import jax
import ml_collections
import numpy as np
from absl import logging

from salm_jax import run_log
from salm_jax import sharding
from salm_jax import tasks
from salm_jax.noise.salm import generator
from salm_jax.noise.salm import resident
from salm_jax.noise.salm import rounds
from salm_jax.noise.salm import surrogate as surrogate_lib


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.adversarial` block."""
  return ml_collections.ConfigDict(dict(
      pretrain_steps=200,   # surrogate SGD steps on the clean images (a model that knows the task)
      passes=5,             # PGD passes over the data, `noise.pgd_steps` steps per batch each
  ))


def derived_noise(noise: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The generator settings the method runs with: class-wise, on fixed class masks."""
  adv = noise.get("adversarial", default_config())
  derived = ml_collections.ConfigDict(noise.to_dict())
  derived.update(mode="class", mask_schedule="fixed", init="zeros", keep_pretrained=True,
                 pretrain_steps=int(adv.pretrain_steps), min_rounds=1,
                 max_rounds=max(int(adv.passes), 1))
  return derived


def check_settings(noise: ml_collections.ConfigDict, task: str | None = None) -> None:
  """Config-only checks, before anything is written."""
  _check_block(noise)
  generator.check_settings(derived_noise(noise), task)


def _check_block(noise: ml_collections.ConfigDict) -> None:
  adv = noise.get("adversarial", default_config())
  for name in ("pretrain_steps", "passes"):
    value = adv[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"noise.adversarial.{name} must be a positive integer, got {value!r}.")


def target_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """(N, 1) labels of the class each image is pushed towards: (y + 1) mod C."""
  return ((labels[:, :1].astype(np.int64) + 1) % num_classes).astype(labels.dtype)


def generate(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
             task: str, num_classes: int, metrics_path: str | None = None,
             progress: bool = True, mesh=None, on_round=None,
             **_unused) -> generator.GeneratorResult:
  """Class-wise adversarial noise for `images`; arguments as `generator.generate`."""
  _check_block(config.noise)
  noise = derived_noise(config.noise)
  labels = tasks.label_matrix(np.asarray(labels), task)
  generator.validate(noise, images, labels, task, num_classes)  # the generator's checks
  mesh = mesh if mesh is not None else sharding.data_mesh()
  sur, state = surrogate_lib.create(config.surrogate, task=task, num_classes=num_classes,
                                    in_channels=images.shape[-1], image_size=images.shape[1],
                                    seed=config.seed)
  steps = generator.compiled_steps(sur, noise)
  key = jax.random.PRNGKey(config.seed)
  groups = labels[:, 0].astype(np.int32)
  table = rounds.load_table(mesh, generator.layout_of(noise, mesh, len(labels)), images,
                            labels, groups)
  run = generator.fresh(noise, table, sharding.replicate(mesh, state), key, num_classes)
  run = generator.prepare(steps, noise, config.surrogate, table, run, key)
  own = table.layout.owned(mesh)
  targets = resident.put(mesh, table.layout, own,
                         target_labels(labels, num_classes)[own].astype(np.int32))
  count = num_classes
  history = []
  for p in range(noise.max_rounds):
    start = time.time()
    rounds.pgd_pass(steps, noise, run, table, p, progress, labels=targets)
    record = {"round": p + 1, "accuracy": rounds.surrogate_accuracy(steps, run, table),
              "target_rate": rounds.surrogate_accuracy(steps, run, table, labels=targets),
              **resident.stats(run.delta, run.union, None, count),
              "seconds": time.time() - start}
    history.append(record)
    logging.info("pass %d/%d: surrogate accuracy on x+δ %.4f, pushed to the target class "
                 "%.4f (%.1fs)", p + 1, noise.max_rounds, record["accuracy"],
                 record["target_rate"], record["seconds"])
    if metrics_path and jax.process_index() == 0:
      run_log.write_history(metrics_path, history)
    if on_round:
      on_round(record)
  rows, delta, masks, _ = rounds.result_rows(run, table)
  return generator.GeneratorResult(delta=delta, masks=masks, history=history,
                                   rounds=len(history), stopped_early=False, surrogate=sur,
                                   surrogate_state=run.state,
                                   rows=None if len(rows) == len(labels) else rows)
