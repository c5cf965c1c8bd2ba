"""One generator round and what comes before the first: the passes over the device rows.

A round trains the surrogate on minibatches of x + δ drawn from all N rows,
runs the masked PGD round over every batch, and counts the surrogate's
accuracy on x + δ. Before round 0, `prepare` may pretrain the surrogate on
the clean images and choose fixed masks. Everything reads the `Table` that
`load_table` put on the devices once (resident.py): a process reads only
its own rows' images, and the host sends the devices row numbers, labels
of a minibatch and keys.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm import auto as tqdm

from salm_jax import sharding
from salm_jax import terminal
from salm_jax.data.dataset import rows_per_chunk, to_float
from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise.salm import resident


@dataclasses.dataclass
class Table:
  """The run's rows on the devices: images as given (uint8 or float32), labels, each row's
  class (class-wise noise), its number and whether it is real; `groups` and `labels` are
  also kept whole on the host (N small integers)."""
  layout: resident.Layout
  mesh: Any
  images: jax.Array
  labels: jax.Array
  groups: jax.Array
  row: jax.Array
  real: jax.Array
  host_labels: np.ndarray
  host_groups: np.ndarray | None  # None: per-image noise

  @property
  def n(self) -> int:
    return self.layout.n

  @property
  def class_wise(self) -> bool:
    return self.host_groups is not None

  def cut(self) -> dict:
    return dict(chunk=self.layout.chunk, ndev=self.layout.ndev)


def load_table(mesh, layout: resident.Layout, images, labels: np.ndarray,
               groups: np.ndarray | None) -> Table:
  """Reads this process's rows of `images` (`images[rows]`: an array, or a reader that loads
  only what it is asked for) and puts them on its devices."""
  own = layout.owned(mesh)
  rows = np.asarray(images[own]) if len(own) < len(images) else np.asarray(images)
  put = lambda values: resident.put(mesh, layout, own, values)
  g = groups if groups is not None else np.zeros(len(labels), np.int32)
  return Table(layout, mesh, images=put(rows), labels=put(labels[own].astype(np.int32)),
               groups=put(g[own].astype(np.int32)), row=put(own.astype(np.int32)),
               real=put(np.ones(len(own), bool)), host_labels=labels, host_groups=groups)


def train_batches(n: int, batch: int, steps: int, key) -> np.ndarray:
  """(steps, batch) rows: consecutive slices of fresh permutations of range(n)."""
  needed = steps * batch
  perms = [np.asarray(jax.random.permutation(jax.random.fold_in(key, i), n))
           for i in range(math.ceil(needed / n))]
  return np.concatenate(perms)[:needed].reshape(steps, batch)


def _source_args(table: Table, idx: np.ndarray, per_image: bool) -> tuple[jax.Array, dict]:
  """Where each row of `idx` finds its noise: its class (or the one zero row of a clean
  source), or its position in the per-image layout."""
  layout = dict(mesh=table.mesh, per_device=table.layout.per_device)
  if per_image:
    index, layout["source_rows"] = table.layout.positions(idx), table.layout.per_device
  else:
    index = table.host_groups[idx] if table.class_wise else np.zeros_like(idx)
    layout["source_rows"] = None
  return sharding.replicate(table.mesh, index.astype(np.int32)), layout


def train(steps, table: Table, state, source, idx: np.ndarray, per_image: bool):
  """`train_steps` on minibatches `idx` (steps, batch) of clip(x + source, 0, 1)."""
  index, layout = _source_args(table, idx, per_image)
  labels = sharding.replicate(table.mesh, table.host_labels[idx])
  pos = sharding.replicate(table.mesh, table.layout.positions(idx))
  return steps.train(state, table.images, labels, source, pos, index, **layout)


def recalibrate(steps, table: Table, state, source, count: int, key, per_image: bool):
  """Exact BatchNorm statistics on `count` random training images of x + source."""
  idx = recalibration_rows(table.n, count, table.mesh, key)
  index, layout = _source_args(table, idx, per_image)
  pos = sharding.replicate(table.mesh, table.layout.positions(idx))
  return steps.recalibrate(state, table.images, source, pos, index, **layout)


def recalibration_rows(n: int, count: int, mesh, key) -> np.ndarray:
  """The `count` random rows (divisible by devices) BatchNorm is set from."""
  count = sharding.round_up(min(count, n), mesh.devices.size)
  return train_batches(n, count, 1, jax.random.fold_in(key, 0xB0B))[0]


def pretrain(steps, noise, sur_cfg, table: Table, state, key):
  """`pretrain_steps` surrogate steps on clean images, in calls of the round's compiled shape."""
  calls = -(-int(noise.get("pretrain_steps", 0)) // noise.train_steps)
  if not calls:
    return state
  batch = sharding.round_up(sur_cfg.batch_size, table.mesh.devices.size)
  zero = sharding.replicate(table.mesh, np.zeros((1,) + table.images.shape[1:], np.float32))
  for c in range(calls):
    idx = train_batches(table.n, batch, noise.train_steps,
                        jax.random.fold_in(key, 0xC1EA0000 + c))
    state, metrics = train(steps, table, state, zero, idx, per_image=False)
  logging.info("pretrained the surrogate for %d steps on clean images: last loss %.4f, "
               "accuracy %.4f", calls * noise.train_steps, float(metrics["loss"]),
               float(metrics["accuracy"]))
  if sur_cfg.get("bn_recalibration"):
    state = recalibrate(steps, table, state, zero, sur_cfg.bn_recalibration, key, False)
  return state


def clean_masks(steps, noise, table: Table, state, fixed):
  """Top-k masks of the clean images' saliency: per image on the devices (into the laid-out
  `fixed`), or summed per class in row order on the host (a (K, H, W) array)."""
  layout = table.layout
  if not table.class_wise:
    for b in range(layout.calls):
      s = steps.clean_saliency(state, table.images, table.labels, b, **table.cut())
      fixed = steps.place_masks(fixed, s, b, **table.cut())
    return fixed
  num = fixed.shape[0] - 1
  total = np.zeros((num,) + tuple(table.images.shape[1:3]), np.float32)
  for b in range(layout.calls):
    s = sharding.to_host(steps.clean_saliency(state, table.images, table.labels, b,
                                              **table.cut()))
    rows = np.arange(b * layout.batch, (b + 1) * layout.batch)
    real = rows < table.n
    s, g = s[real], table.host_groups[rows[real]]
    for c in range(num):  # row after row, as one sum over the whole class would add them
      total[c] = np.concatenate([total[c][None], s[g == c]]).sum(0)
  return resident.replicate(table.mesh, np.asarray(masks_lib.topk_mask(
      jnp.asarray(total), float(noise.mask_ratio))))


def pgd_pass(steps, noise, run, table: Table, r: int, progress: bool, key=None,
             labels: jax.Array | None = None):
  """Updates the device-resident run.delta / run.union, one compiled PGD round per batch.

  `key`: the round's randomness for `eot_samples` (a batch folds in its first row);
  `labels`: laid-out labels to push towards instead of the true ones (targeted noise).
  """
  layout = table.layout
  labels = table.labels if labels is None else labels
  bar = tqdm.tqdm(total=table.n, desc=f"round {r + 1}/{noise.max_rounds}", unit="img",
                  disable=terminal.bar_disable(progress and jax.process_index() == 0),
                  leave=False)
  fixed = run.fixed_mask if noise.mask_schedule == "fixed" else None
  for b in range(layout.calls):
    jax.block_until_ready(run.delta)  # one batch in flight
    k = None if key is None else sharding.replicate(
        table.mesh, jax.random.fold_in(key, b * layout.batch))
    if not table.class_wise:
      run.delta, run.union = steps.pgd_rows(run.state, table.images, labels, run.delta,
                                            run.union, fixed, b, k, mesh=table.mesh,
                                            chunk=layout.chunk)
    else:
      run.delta, m = steps.pgd_class(run.state, table.images, labels, table.groups,
                                     table.real, run.delta, fixed, b, k, mesh=table.mesh,
                                     **table.cut())
      run.union = steps.union(run.union, m)
    bar.update(min(layout.batch, table.n - b * layout.batch))
  bar.close()


def surrogate_accuracy(steps, run, table: Table, labels: jax.Array | None = None) -> float:
  """The surrogate's accuracy on x + δ, summed on the devices (one scalar to the host)."""
  labels = table.labels if labels is None else labels
  total = 0
  for b in range(table.layout.calls):
    jax.block_until_ready(total)  # one batch in flight, as in `pgd_pass`
    total = total + steps.correct(run.state, table.images, labels, table.groups, table.real,
                                  run.delta, b, class_wise=table.class_wise, **table.cut())
  return float(total) / table.n


def one_round(steps, noise, sur_cfg, run, table: Table, key, r: int, progress: bool) -> dict:
  """Surrogate training, then a PGD round over all rows, then accuracy on x + δ; updates
  `run` in place and returns the round's record."""
  start = time.time()
  batch = sharding.round_up(sur_cfg.batch_size, table.mesh.devices.size)
  idx = train_batches(table.n, batch, noise.train_steps, key)
  state, metrics = train(steps, table, run.state, run.delta, idx, not table.class_wise)
  if sur_cfg.get("bn_recalibration"):
    state = recalibrate(steps, table, state, run.delta, sur_cfg.bn_recalibration, key,
                        not table.class_wise)
  run.state = state
  eot_key = jax.random.fold_in(key, 0xE07) if noise.get("eot_samples", 0) else None
  pgd_pass(steps, noise, run, table, r, progress, eot_key)
  accuracy = surrogate_accuracy(steps, run, table)
  count = run.delta.shape[0] - 1 if table.class_wise else table.n
  real = None if table.class_wise else table.real
  return {"round": r + 1, "accuracy": accuracy, "train_loss": float(metrics["loss"]),
          "train_accuracy": float(metrics["accuracy"]),
          **resident.stats(run.delta, run.union, real, count), "seconds": time.time() - start}


def result_rows(run, table: Table, expand: bool = True) -> tuple:
  """(rows, δ, masks, class noise) of this process's rows, x + δ in [0, 1].

  Class-wise noise is expanded by label a chunk of rows at a time, so the only float copy of
  the rows is the result; with `expand=False` it comes back unexpanded as a `ClassNoise`
  (δ and masks None: no float copy of the rows, nor of the images).
  """
  if not table.class_wise:
    rows, delta = resident.local(run.delta, table.layout)
    return rows, delta, resident.local(run.union, table.layout)[1], None
  count = run.delta.shape[0] - 1
  rows = table.layout.owned(table.mesh)
  noise = ClassNoise(resident.replicated_to_host(run.delta, count),
                     resident.replicated_to_host(run.union, count), table.host_groups[rows])
  if not expand:
    return rows, None, None, noise
  return rows, noise.delta(resident.local(table.images, table.layout)[1]), noise.masks(), None


@dataclasses.dataclass
class ClassNoise:
  """One δ and mask per class, and the class of each of a process's rows: the rows' noise is
  expanded on demand, a part at a time."""
  classes: np.ndarray  # (classes, H, W, C) float32
  union: np.ndarray    # (classes, H, W) bool: the pixels each class's masks ever chose
  groups: np.ndarray   # (rows,) each row's class

  def delta(self, images: np.ndarray, part: slice = slice(None)) -> np.ndarray:
    """float32 δ of rows `part` whose images are `images`: clip(x + δ_class, 0, 1) − x."""
    groups = self.groups[part]
    out = np.empty(images.shape[:1] + self.classes.shape[1:], np.float32)
    step = rows_per_chunk(images.shape)
    for start in range(0, len(groups), step):
      chunk = slice(start, start + step)
      x = to_float(images[chunk])
      out[chunk] = np.clip(x + self.classes[groups[chunk]], 0.0, 1.0) - x
    return out

  def masks(self, part: slice = slice(None)) -> np.ndarray:
    return self.union[self.groups[part]]
