"""Per-pixel gradient saliency: which pixels the surrogate's loss is most sensitive to.

s_i = Σ_c |∇_δ L(f(x_i + δ_i), y_i)|, one (H, W) map per image. The loss is
summed (not averaged) over the batch, so each image's gradient is its own
loss's gradient whatever the batch size or sharding: saliency and noise for
an image never depend on which other images share its batch.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from salm_jax import tasks
from salm_jax import xla_cpu

LogitsFn = Callable[[jax.Array], jax.Array]


def reduce_channels(values: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, H, W): Σ_c |v|, the magnitude a pixel's channels share."""
  return jnp.abs(values).sum(-1)


def input_gradient(logits_fn: LogitsFn, images: jax.Array, labels: jax.Array,
                   delta: jax.Array, task: str = tasks.MULTI_CLASS):
  """(Σ_i L_i, ∇_δ Σ_i L_i) at x + δ; one forward and one backward pass."""
  def total_loss(d):
    return tasks.per_example_loss(logits_fn(images + d), labels, task).sum()
  return jax.value_and_grad(total_loss)(delta)


def saliency_map(logits_fn: LogitsFn, images, labels, delta=None, *,
                 task: str = tasks.MULTI_CLASS) -> jax.Array:
  """The traceable saliency behind `pixel_saliency`, for a caller's own compiled program."""
  labels = tasks.label_matrix(labels, task)
  delta = jnp.zeros_like(images) if delta is None else delta
  return reduce_channels(input_gradient(logits_fn, images, labels, delta, task)[1])


def pixel_saliency(apply_fn: Callable[[Any, jax.Array], jax.Array], variables, images, labels,
                   delta=None, *, task: str = tasks.MULTI_CLASS) -> jax.Array:
  """(B, H, W) saliency Σ_c |∇_δ L| at x + δ (δ = 0 if omitted); one compiled call.

  Args:
    apply_fn: `apply_fn(variables, images) -> logits`, images NHWC in [0, 1];
      static under jit (hashed by identity).
    variables: the model's weights and state, any pytree (traced).
    images: (B, H, W, C) float in [0, 1].
    labels: (B, L) MedMNIST labels, or (B,) class indices for single-label tasks.
    delta: current noise, same shape as images, or None for the clean image.
    task: MedMNIST task type; picks softmax CE or sigmoid BCE.
  """
  tasks.check_task(task)
  return _compiled()(apply_fn, variables, images, labels, delta, task=task)


@functools.cache
def _compiled():
  def saliency_of(apply_fn, variables, images, labels, delta, *, task):
    return saliency_map(functools.partial(apply_fn, variables), images, labels, delta, task=task)
  return xla_cpu.jit(saliency_of, static_argnames=("apply_fn", "task"))
