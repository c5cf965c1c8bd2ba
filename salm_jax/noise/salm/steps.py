"""The compiled units of a generator run, over the rows kept on the devices (resident.py).

Surrogate training, BatchNorm recalibration, a PGD batch (per image or
class-wise), the accuracy count, clean saliency masks and the final
per-image noise. Each is one jitted program; the images, labels and noise
they read are device arrays laid out by `resident.Layout`, so a round sends
the devices only row numbers and keys.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from salm_jax import sharding
from salm_jax import tasks
from salm_jax import xla_cpu
from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise.salm import pgd
from salm_jax.noise.salm import resident
from salm_jax.noise.salm import saliency as saliency_lib
from salm_jax.noise.salm import surrogate as surrogate_lib

PGD_FIELDS = ("mask_ratio", "epsilon", "step_size", "pgd_steps", "mask_schedule", "eot_samples",
              "support_ties")


def compiled(sur: surrogate_lib.Surrogate, pgd_items: tuple) -> "Steps":
  """The run's programs for a surrogate and its ((field, value), ...) PGD settings, cached."""
  return _cached(sur, pgd_items)


@functools.lru_cache(maxsize=8)
def _cached(sur, pgd_items: tuple) -> "Steps":
  return Steps(sur, dict(pgd_items))


# uint8 -> [0, 1] as numpy's float32 division gives it: a looked-up constant, since XLA may
# turn a division by 255 into a multiplication that rounds differently.
_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)


def as_float(x: jax.Array) -> jax.Array:
  """Device images in [0, 1]: uint8 rows converted exactly as the host converts them."""
  return jnp.asarray(_LEVELS)[x.astype(jnp.int32)] if x.dtype == jnp.uint8 else x


def _gathered(images, pos, mesh, per_device):
  """float32 images of minibatch positions `pos` (gathered rows are exact integers)."""
  x = resident.gather(images, pos, mesh=mesh, per_device=per_device)
  return jnp.asarray(_LEVELS)[x.astype(jnp.int32)] if images.dtype == jnp.uint8 else x


def _noise_of(source, index, mesh, per_device):
  """Minibatch noise: class-wise rows by class (`per_device=None`), or per-image rows."""
  if per_device is None:
    return source[index]
  return resident.gather(source, index, mesh=mesh, per_device=per_device)


class Steps:
  """Built once per (surrogate, PGD settings) and cached, so repeated runs with the same
  shapes (sweeps over other fields, tests) do not compile again."""

  def __init__(self, sur: surrogate_lib.Surrogate, noise: dict):
    task = sur.task
    epsilon, step_size = float(noise["epsilon"]), float(noise["step_size"])
    static = dict(ratio=masks_lib.check_ratio(noise["mask_ratio"]), steps=int(noise["pgd_steps"]),
                  task=task, schedule=noise["mask_schedule"], return_mask=True,
                  unroll=pgd.default_unroll(), eot_samples=int(noise["eot_samples"]),
                  ties=noise["support_ties"])
    ratio = static["ratio"]

    def train(state, images, labels, source, pos, index, *, mesh, per_device, source_rows):
      x = _gathered(images, pos, mesh, per_device)
      return surrogate_lib.train_steps(sur, state, x, labels,
                                       _noise_of(source, index, mesh, source_rows))

    def recalibrate(state, images, source, pos, index, *, mesh, per_device, source_rows):
      x = _gathered(images, pos[None], mesh, per_device)[0]
      inputs = jnp.clip(x + _noise_of(source, index[None], mesh, source_rows)[0], 0.0, 1.0)
      return surrogate_lib.recalibrate_batch_norm(sur, state, inputs)

    def pgd_round(state, images, labels, delta, fixed_mask, groups, key):
      """The masked round on one batch of float images (what the class-wise pass runs)."""
      return pgd.masked_round(sur.logits_fn(state), images, labels, delta, epsilon, step_size,
                              fixed_mask, groups, key=key, **static)

    def correct(state, images, labels, groups, real, source, b, *, chunk, ndev, class_wise):
      """How many real rows of batch b the surrogate gets right on x + δ."""
      cut = lambda a: resident.take(a, b, chunk, ndev)
      delta = source[cut(groups)] if class_wise else cut(source)
      logits = sur.logits_fn(state)(jnp.clip(as_float(cut(images)) + delta, 0.0, 1.0))
      return jnp.where(cut(real), tasks.per_example_correct(logits, cut(labels), task), 0).sum()

    def clean_saliency(state, images, labels, b, *, chunk, ndev):
      cut = lambda a: resident.take(a, b, chunk, ndev)
      return saliency_lib.saliency_map(sur.logits_fn(state), as_float(cut(images)), cut(labels),
                                       task=task)

    def place_masks(fixed, saliency, b, *, chunk, ndev):
      """Per-image top-k of batch b's clean saliency, written into the laid-out fixed masks."""
      return resident.place(fixed, masks_lib.topk_mask(saliency, ratio), b, chunk, ndev)

    # Every program here is convolutions: compiled with the library's XLA:CPU options.
    layout_args = ("mesh", "per_device", "source_rows")
    self.train = xla_cpu.jit(train, static_argnames=layout_args)
    self.recalibrate = xla_cpu.jit(recalibrate, static_argnames=layout_args)
    self.pgd_round = xla_cpu.jit(pgd_round)
    self.pgd_class = xla_cpu.jit(functools.partial(_pgd_class, sur, epsilon, step_size, static),
                                 static_argnames=("chunk", "ndev", "mesh"))
    self.pgd_rows = xla_cpu.jit(functools.partial(_pgd_rows, sur, epsilon, step_size, static),
                                donate_argnums=(3, 4), static_argnames=("mesh", "chunk"))
    self.correct = xla_cpu.jit(correct, static_argnames=("chunk", "ndev", "class_wise"))
    self.clean_saliency = xla_cpu.jit(clean_saliency, static_argnames=("chunk", "ndev"))
    self.place_masks = jax.jit(place_masks, donate_argnums=0, static_argnames=("chunk", "ndev"))
    self.union = jax.jit(jnp.logical_or)


def _pgd_class(sur, epsilon, step_size, static, state, images, labels, groups, real, delta,
               fixed, b, key, *, chunk, ndev, mesh):
  """Class-wise round on batch b. Each device takes the gradient on its own rows and the
  devices' parts are gathered and summed in device order, so the noise depends on the number
  of devices only, not on how they are spread over processes. (With `eot_samples` the crops
  are drawn for the whole batch, and the compiler sums it.)"""
  spare = delta.shape[0] - 1  # padded rows push on the spare class, which is dropped
  if static["eot_samples"]:
    cut = lambda a: resident.take(a, b, chunk, ndev)
    g = jnp.where(cut(real), cut(groups), spare)
    return pgd.masked_round(sur.logits_fn(state), as_float(cut(images)), cut(labels), delta,
                            epsilon, step_size, fixed, g, key=key, **static)

  def local(state, images, labels, groups, real, delta, fixed, b):
    cut = lambda a: jax.lax.dynamic_slice_in_dim(a, b * chunk, chunk)
    g = jnp.where(cut(real), cut(groups), spare)
    in_order = lambda grad: jax.lax.optimization_barrier(
        jax.lax.all_gather(grad, sharding.DATA_AXIS)).sum(0)  # not rewritten to an all-reduce
    return pgd.masked_round(sur.logits_fn(state), as_float(cut(images)), cut(labels), delta,
                            epsilon, step_size, fixed, g, key=None, reduce_grad=in_order,
                            **static)
  rows, shared = P(sharding.DATA_AXIS), P()
  return jax.shard_map(local, mesh=mesh, out_specs=(shared, shared), check_vma=False,
                       in_specs=(shared, rows, rows, rows, rows, shared, shared, shared))(
                           state, images, labels, groups, real, delta, fixed, b)


def _pgd_rows(sur, epsilon, step_size, static, state, images, labels, delta, union, fixed, b,
              key, *, mesh, chunk):
  """Per-image round on batch b of the laid-out images, δ and masks, δ and masks updated in
  place: each device works on its own rows, with no collective and no transfer."""
  def local(state, images, labels, delta, union, fixed, b, key):
    cut = lambda a: jax.lax.dynamic_slice_in_dim(a, b * chunk, chunk)
    put = lambda a, v: jax.lax.dynamic_update_slice_in_dim(a, v.astype(a.dtype), b * chunk, 0)
    if key is not None:  # each device draws its own images' crops
      key = jax.random.fold_in(key, jax.lax.axis_index(sharding.DATA_AXIS))
    new, mask = pgd.masked_round(sur.logits_fn(state), as_float(cut(images)), cut(labels),
                                 cut(delta), epsilon, step_size,
                                 None if fixed is None else cut(fixed), None, key=key, **static)
    return put(delta, new), put(union, cut(union) | mask)
  rows, shared = P(sharding.DATA_AXIS), P()
  return jax.shard_map(local, mesh=mesh, out_specs=(rows, rows), check_vma=False, in_specs=(
      shared, rows, rows, rows, rows, rows, shared, shared))(
          state, images, labels, delta, union, fixed, b, key)

