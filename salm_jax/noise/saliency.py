"""Per-pixel gradient saliency: which pixels the surrogate's loss is most sensitive to.

s_i = |∇_δ L(f(x_i + δ_i), y_i)| reduced over channels to one (H, W) map.
The loss is summed (not averaged) over the batch, so each image's gradient is
its own loss's gradient whatever the batch size or sharding: saliency and
noise for an image never depend on which other images share its batch.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from salm_jax import tasks

LogitsFn = Callable[[jax.Array], jax.Array]
REDUCTIONS = ("sum", "max", "l2")


def check_reduce(reduce: str) -> str:
  if reduce not in REDUCTIONS:
    raise ValueError(f"saliency reduction must be one of {REDUCTIONS}, got {reduce!r}.")
  return reduce


def reduce_channels(values: jax.Array, reduce: str = "sum") -> jax.Array:
  """(B, H, W, C) -> (B, H, W): sum of |v|, max of |v|, or the l2 norm over channels."""
  check_reduce(reduce)
  if reduce == "sum":
    return jnp.abs(values).sum(-1)
  if reduce == "max":
    return jnp.abs(values).max(-1)
  return jnp.sqrt(jnp.square(values).sum(-1))


def input_gradient(logits_fn: LogitsFn, images: jax.Array, labels: jax.Array,
                   delta: jax.Array, task: str = tasks.MULTI_CLASS):
  """(Σ_i L_i, ∇_δ Σ_i L_i) at x + δ; one forward and one backward pass."""
  def total_loss(d):
    return tasks.per_example_loss(logits_fn(images + d), labels, task).sum()
  return jax.value_and_grad(total_loss)(delta)


def pixel_saliency(logits_fn: LogitsFn, images: jax.Array, labels: jax.Array,
                   delta: jax.Array | None = None, *, task: str = tasks.MULTI_CLASS,
                   reduce: str = "sum") -> jax.Array:
  """(B, H, W) saliency |∇_δ L| at x + δ (δ = 0 if omitted), reduced over channels.

  Args:
    logits_fn: pure function NHWC images in [0, 1] -> logits.
    images: (B, H, W, C) float in [0, 1].
    labels: (B, L) MedMNIST labels.
    delta: current noise, same shape as images, or None for the clean image.
    task: MedMNIST task type; picks softmax CE or sigmoid BCE.
    reduce: 'sum' (default), 'max' or 'l2' over channels.
  """
  labels = tasks.label_matrix(labels, task)
  if delta is None:
    delta = jnp.zeros_like(images)
  _, grad = input_gradient(logits_fn, images, labels, delta, task)
  return reduce_channels(grad, reduce)
