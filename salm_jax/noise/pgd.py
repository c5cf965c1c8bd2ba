"""Masked error-minimizing PGD: one round of SALM noise updates, as one compiled call.

Each step moves δ *down* the surrogate's loss (error-minimizing, Huang et al.
2021) but only on a top-k mask of salient pixels:

    g = ∇_δ L(f(x + δ), y)
    M = topk_mask(reduce_c |g|, ratio)            (per `mask_schedule`)
    δ ← clip_ε(δ − α · M ⊙ sign(g)),  then  δ ← clip(x + δ, 0, 1) − x

The saliency that picks M is the same gradient that drives the step, so a
SALM step costs what an EM step costs. With ratio = 1 the mask is all ones and
the step is exactly EM's: EM is that setting, not a second code path.

Mask schedules: 'step' recomputes M every step; 'round' fixes it at the
first step of the round; 'fixed' takes it from the caller (e.g. the clean
image's saliency under the first surrogate). Support: 'union' lets δ live on
the union of the masks used; 'strict' projects δ to its own top-k pixels
by |δ| at the end of the round, so ‖δ_i‖₀ ≤ k.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from salm_jax import tasks
from salm_jax.noise import masks as masks_lib
from salm_jax.noise import saliency as saliency_lib

MASK_SCHEDULES = ("step", "round", "fixed")
SUPPORTS = ("union", "strict")


def check_budget(epsilon, step_size, steps) -> None:
  """Raises a clear error for an invalid ε, α or step count (concrete values only)."""
  for name, value in (("epsilon", epsilon), ("step_size", step_size)):
    if isinstance(value, (int, float)) and not (math.isfinite(value) and 0.0 < value <= 1.0):
      raise ValueError(f"{name} must be a finite number in (0, 1] (in [0,1] pixel units), "
                       f"got {value!r}.")
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ValueError(f"steps must be a non-negative integer, got {steps!r}.")


def check_options(mask_schedule: str, support: str) -> None:
  if mask_schedule not in MASK_SCHEDULES:
    raise ValueError(f"mask_schedule must be one of {MASK_SCHEDULES}, got {mask_schedule!r}.")
  if support not in SUPPORTS:
    raise ValueError(f"support must be one of {SUPPORTS}, got {support!r}.")


def check_fixed_mask(mask_schedule: str, fixed_mask) -> None:
  if (mask_schedule == "fixed") != (fixed_mask is not None):
    raise ValueError("fixed_mask must be given exactly when mask_schedule='fixed'.")


def project(images: jax.Array, delta: jax.Array, epsilon) -> jax.Array:
  """Projects δ onto ‖δ‖∞ ≤ ε and x + δ ∈ [0, 1]."""
  delta = jnp.clip(delta, -epsilon, epsilon)
  return jnp.clip(images + delta, 0.0, 1.0) - images


def masked_pgd(logits_fn, images, labels, delta, *, mask_ratio: float = 0.2,
               epsilon=8 / 255, step_size=0.8 / 255, steps: int = 20,
               task: str = tasks.MULTI_CLASS, saliency_reduce: str = "sum",
               mask_schedule: str = "step", support: str = "union",
               fixed_mask=None, groups=None, return_mask: bool = False,
               unroll: bool | int | None = None):
  """Runs `steps` masked error-minimizing PGD steps on a batch; one `jit`.

  Args:
    logits_fn: pure function (B, H, W, C) images in [0, 1] -> logits; e.g. a
      surrogate in inference mode. Static under jit (hashed by identity).
    images: (B, H, W, C) clean images in [0, 1].
    labels: (B, L) MedMNIST labels.
    delta: (B, H, W, C) starting noise (zeros for SALM, uniform for EM).
    mask_ratio: fraction of pixels per image a step may touch, in (0, 1].
    epsilon: L∞ budget; step_size: α per step; steps: number of steps.
    task: MedMNIST task type (softmax CE or sigmoid BCE).
    saliency_reduce: channel reduction of |∇| for ranking: 'sum', 'max', 'l2'.
    mask_schedule: 'step', 'round' or 'fixed' (then pass `fixed_mask`).
    support: 'union' or 'strict'.
    fixed_mask: bool (B, H, W) (or (G, H, W) with groups), only with
      mask_schedule='fixed'.
    groups: optional int (B,): images in one group share one δ (class-wise
      noise, EM's universal variant: groups = class labels). `delta` is then
      (G, H, W, C); its gradient sums over the group's images, δ is kept in
      the ε-ball, and images are clipped to [0, 1] where δ is applied.
    return_mask: also return the union of the masks used, bool (B, H, W).
    unroll: `fori_loop` unrolling; None = `default_unroll()`.

  Returns:
    The new δ, or (δ, union_mask) if `return_mask`.
  """
  ratio = masks_lib.check_ratio(mask_ratio)
  check_budget(epsilon, step_size, steps)
  check_options(mask_schedule, support)
  check_fixed_mask(mask_schedule, fixed_mask)
  saliency_lib.check_reduce(saliency_reduce)
  tasks.check_task(task)
  labels = tasks.label_matrix(labels, task)
  if images.ndim != 4 or delta.ndim != 4 or delta.shape[1:] != images.shape[1:] or (
      groups is None and delta.shape != images.shape):
    raise ValueError(f"images must be (B, H, W, C) and delta {'(G' if groups is not None else '(B'}"
                     f", H, W, C); got {images.shape} and {delta.shape}.")
  return _masked_pgd(logits_fn, images, labels, delta, epsilon, step_size, fixed_mask, groups,
                     ratio=ratio, steps=steps, task=task, reduce=saliency_reduce,
                     schedule=mask_schedule, support=support, return_mask=return_mask,
                     unroll=default_unroll() if unroll is None else unroll)


def default_unroll() -> bool | int:
  """Fully unrolled loops on CPU, rolled elsewhere.

  XLA:CPU runs a round with its steps in a while loop 3-5× slower than the
  same steps unrolled, and partial unrolling (5 steps per iteration) is as
  slow as none; the unrolled round does not compile much longer
  (`python -m benchmarks.bench_levers`, docs/benchmarks.md). GPUs and TPUs
  keep the loop.
  """
  return True if jax.default_backend() == "cpu" else 1


@functools.partial(jax.jit, static_argnames=(
    "logits_fn", "ratio", "steps", "task", "reduce", "schedule", "support", "return_mask",
    "unroll"))
def _masked_pgd(logits_fn, images, labels, delta, epsilon, step_size, fixed_mask, groups, *,
                ratio, steps, task, reduce, schedule, support, return_mask, unroll):
  delta = delta.astype(images.dtype)
  mask_shape = delta.shape[:3]

  def gradient(delta):
    if groups is None:
      return saliency_lib.input_gradient(logits_fn, images, labels, delta, task)[1]
    def total_loss(d):
      inputs = jnp.clip(images + d[groups], 0.0, 1.0)
      return tasks.per_example_loss(logits_fn(inputs), labels, task).sum()
    return jax.grad(total_loss)(delta)

  def step(i, carry):
    delta, mask, union = carry
    grad = gradient(delta)
    if schedule in ("step", "round"):
      new_mask = masks_lib.topk_mask(saliency_lib.reduce_channels(grad, reduce), ratio)
      mask = new_mask if schedule == "step" else jnp.where(i == 0, new_mask, mask)
    update = jnp.where(mask[..., None], jnp.sign(grad), jnp.zeros_like(grad))
    delta = delta - step_size * update
    if groups is None:
      delta = project(images, delta, epsilon)
    else:
      delta = jnp.clip(delta, -epsilon, epsilon)
    return delta, mask, union | mask

  init_mask = fixed_mask if fixed_mask is not None else jnp.zeros(mask_shape, bool)
  init_union = jnp.zeros(mask_shape, bool)
  delta, _, union = jax.lax.fori_loop(0, steps, step, (delta, init_mask, init_union),
                                      unroll=unroll if steps else 1)
  if support == "strict":
    delta = masks_lib.project_to_topk(delta, ratio, reduce)
  return (delta, union) if return_mask else delta
