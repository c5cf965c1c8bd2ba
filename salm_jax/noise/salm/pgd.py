"""Masked error-minimizing PGD: one round of SALM noise updates, as one compiled call.

Each step moves δ *down* the surrogate's loss (error-minimizing, Huang et al.
2021) but only on a top-k mask of salient pixels:

    g = ∇_δ L(f(x + δ), y)
    M = topk_mask(Σ_c |g|, ratio)                 (per `mask_schedule`)
    δ ← clip_ε(δ − α · M ⊙ sign(g)),  then  δ ← clip(x + δ, 0, 1) − x

and at the end of the round δ keeps only its own k largest pixels, so that
‖δ_i‖₀ ≤ k = floor(ratio·H·W) whatever masks the steps used. The saliency
that picks M is the gradient that drives the step, so a SALM step costs what
an EM step costs; with ratio = 1 the mask is all ones and the round is
exactly EM's.

Mask schedules: 'step' re-chooses M at every step; 'fixed' takes it from the
caller (e.g. the clean images' saliency under a pretrained surrogate).

The model comes in as Flax and big_vision pass it: `apply_fn(variables,
images) -> logits`, static under `jit` (hashed by identity: pass the same
function every call, e.g. a module-level one), and `variables`, any pytree,
traced. A new set of weights then reuses the compiled round.
`masked_pgd_fn` keeps the closure form `logits_fn(images)`.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from salm_jax import tasks
from salm_jax import xla_cpu
from salm_jax.noise.salm import augment
from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise.salm import saliency as saliency_lib

MASK_SCHEDULES = ("step", "fixed")
ApplyFn = Callable[[Any, jax.Array], jax.Array]


TIES = ("saliency", "index")  # how the end-of-round projection orders pixels of equal |δ|


def check_budget(epsilon, step_size, steps) -> None:
  """Raises a clear error for an invalid ε, α or step count (concrete values only)."""
  for name, value in (("epsilon", epsilon), ("step_size", step_size)):
    if isinstance(value, (int, float)) and not (math.isfinite(value) and 0.0 < value <= 1.0):
      raise ValueError(f"{name} must be a finite number in (0, 1] (in [0,1] pixel units), "
                       f"got {value!r}.")
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ValueError(f"steps must be a non-negative integer, got {steps!r}.")


def check_schedule(mask_schedule: str, fixed_mask=None, check_mask: bool = True) -> None:
  if mask_schedule not in MASK_SCHEDULES:
    raise ValueError(f"mask_schedule must be one of {MASK_SCHEDULES}, got {mask_schedule!r}.")
  if check_mask and (mask_schedule == "fixed") != (fixed_mask is not None):
    raise ValueError("fixed_mask must be given exactly when mask_schedule='fixed'.")


def check_ties(support_ties) -> None:
  """`support_ties` one of `TIES`."""
  if support_ties not in TIES:
    raise ValueError(f"support_ties must be one of {TIES}, got {support_ties!r}.")


def check_eot(eot_samples, key=False) -> None:
  """`eot_samples` a non-negative integer; a key given when it is positive (key=False: unchecked)."""
  if isinstance(eot_samples, bool) or not isinstance(eot_samples, int) or eot_samples < 0:
    raise ValueError(f"eot_samples must be a non-negative integer, got {eot_samples!r}.")
  if eot_samples and key is None:
    raise ValueError("eot_samples > 0 draws random crops and flips: pass a PRNG key.")


def project(images: jax.Array, delta: jax.Array, epsilon) -> jax.Array:
  """Projects δ onto ‖δ‖∞ ≤ ε and x + δ ∈ [0, 1]."""
  delta = jnp.clip(delta, -epsilon, epsilon)
  return jnp.clip(images + delta, 0.0, 1.0) - images


def masked_pgd(apply_fn: ApplyFn, variables, images, labels, delta, *,
               mask_ratio: float = 0.1, epsilon=8 / 255, step_size=1.6 / 255, steps: int = 10,
               task: str = tasks.MULTI_CLASS, mask_schedule: str = "step", fixed_mask=None,
               groups=None, return_mask: bool = False, unroll: bool | int | None = None,
               eot_samples: int = 0, key=None, support_ties: str = "saliency"):
  """Runs `steps` masked error-minimizing PGD steps on a batch; one compiled call.

  Args:
    apply_fn: `apply_fn(variables, images) -> logits`, images NHWC in [0, 1];
      static under jit (hashed by identity).
    variables: the model's weights and state, any pytree (traced).
    images: (B, H, W, C) clean images in [0, 1].
    labels: (B, L) MedMNIST labels, or (B,) class indices for single-label tasks.
    delta: (B, H, W, C) starting noise (zeros for SALM, uniform for EM), or
      (G, H, W, C) with `groups`.
    mask_ratio: the most pixels per image a step may touch, and δ may hold
      after the round, as a fraction in (0, 1].
    epsilon: L∞ budget; step_size: α per step; steps: number of steps.
    task: MedMNIST task type (softmax CE or sigmoid BCE).
    mask_schedule: 'step' or 'fixed' (then pass `fixed_mask`).
    fixed_mask: bool (B, H, W) (or (G, H, W) with groups), only with 'fixed'.
    groups: optional int (B,): images in one group share one δ (class-wise
      noise: groups = class labels). Its gradient sums over the group's images,
      δ stays in the ε-ball, and images are clipped to [0, 1] where δ is applied.
    return_mask: also return the union of the masks used, bool (B | G, H, W).
    unroll: `fori_loop` unrolling; None = `default_unroll()`.
    eot_samples: > 0 averages each step's gradient over that many random crops
      and flips of x + δ (then pass `key`); 0 (default): the plain gradient.
    support_ties: how the end-of-round projection ranks pixels of equal |δ|
      (most are at ±ε): 'saliency' (the last step's, default) or 'index' (the
      lower raster index, which favours the image's first rows).

  Returns:
    The new δ, or (δ, union_mask) if `return_mask`.
  """
  ratio = masks_lib.check_ratio(mask_ratio)
  check_budget(epsilon, step_size, steps)
  check_schedule(mask_schedule, fixed_mask)
  labels = tasks.label_matrix(labels, tasks.check_task(task))
  check_eot(eot_samples, key)
  check_ties(support_ties)
  if images.ndim != 4 or delta.ndim != 4 or delta.shape[1:] != images.shape[1:] or (
      groups is None and delta.shape != images.shape):
    raise ValueError(f"images must be (B, H, W, C) and delta {'(G' if groups is not None else '(B'}"
                     f", H, W, C); got {images.shape} and {delta.shape}.")
  return _compiled()(apply_fn, variables, images, labels, delta, epsilon, step_size,
                     fixed_mask, groups, key, ratio=ratio, steps=steps, task=task,
                     schedule=mask_schedule, return_mask=return_mask,
                     unroll=default_unroll() if unroll is None else unroll,
                     eot_samples=eot_samples, ties=support_ties)


def masked_pgd_fn(logits_fn: Callable[[jax.Array], jax.Array], images, labels, delta, **kwargs):
  """`masked_pgd` for a closure `logits_fn(images) -> logits` (static: one compilation per
  function object, so keep the function and reuse it)."""
  return masked_pgd(_Closure(logits_fn), None, images, labels, delta, **kwargs)


class _Closure:
  """`logits_fn` as an `apply_fn` that ignores its (empty) variables; equal when the
  function is the same object, so a kept function compiles once."""

  def __init__(self, logits_fn):
    self.logits_fn = logits_fn

  def __call__(self, variables, images):
    del variables
    return self.logits_fn(images)

  def __eq__(self, other):
    return isinstance(other, _Closure) and other.logits_fn is self.logits_fn

  def __hash__(self):
    return id(self.logits_fn)


def default_unroll() -> bool | int:
  """Fully unrolled loops on CPU, rolled elsewhere.

  XLA:CPU runs a round with its steps in a while loop 3-5× slower than the
  same steps unrolled, and partial unrolling (5 steps per iteration) is as
  slow as none; the unrolled round does not compile much longer
  (docs/benchmarks.md). GPUs and TPUs keep the loop.
  """
  return True if jax.default_backend() == "cpu" else 1


@functools.cache
def _compiled():
  """The round, jitted with the library's XLA:CPU options (made at first use, not import)."""
  def round_of(apply_fn, variables, images, labels, delta, epsilon, step_size, fixed_mask,
               groups, key, *, ratio, steps, task, schedule, return_mask, unroll, eot_samples,
               ties):
    return masked_round(functools.partial(apply_fn, variables), images, labels, delta, epsilon,
                        step_size, fixed_mask, groups, ratio=ratio, steps=steps, task=task,
                        schedule=schedule, return_mask=return_mask, unroll=unroll,
                        eot_samples=eot_samples, key=key, ties=ties)
  return xla_cpu.jit(round_of, static_argnames=(
      "apply_fn", "ratio", "steps", "task", "schedule", "return_mask", "unroll", "eot_samples",
      "ties"))


def masked_round(logits_fn, images, labels, delta, epsilon, step_size, fixed_mask, groups, *,
                 ratio, steps, task, schedule, return_mask, unroll, eot_samples=0, key=None,
                 ties="saliency", reduce_grad=None):
  """The traceable round behind `masked_pgd` (arguments checked there), for use inside a
  caller's own compiled program such as the generator's; `logits_fn(images) -> logits`.

  With `eot_samples` > 0 each step's gradient is the mean over that many random
  crops and flips of x + δ (`augment.py`), drawn from `key` folded with the step.
  `reduce_grad`: applied to each step's gradient before it is used (the
  generator's class-wise round sums the devices' parts there, in a fixed order).
  """
  delta = delta.astype(images.dtype)

  def total_loss(d, draw=None):
    inputs = images + d if groups is None else jnp.clip(images + d[groups], 0.0, 1.0)
    inputs = inputs if draw is None else augment.crop_flip(inputs, draw)
    return tasks.per_example_loss(logits_fn(inputs), labels, task).sum()

  def gradient(delta, i):
    if eot_samples:
      return augment.expected_gradient(total_loss, delta, jax.random.fold_in(key, i),
                                       eot_samples)
    if groups is None:
      return saliency_lib.input_gradient(logits_fn, images, labels, delta, task)[1]
    return jax.grad(total_loss)(delta)

  def step(i, carry):
    delta, mask, union, _ = carry
    grad = gradient(delta, i) if reduce_grad is None else reduce_grad(gradient(delta, i))
    sal = saliency_lib.reduce_channels(grad)
    if schedule == "step":
      mask = masks_lib.topk_mask(sal, ratio)
    update = jnp.where(mask[..., None], jnp.sign(grad), jnp.zeros_like(grad))
    delta = delta - step_size * update
    delta = project(images, delta, epsilon) if groups is None else jnp.clip(
        delta, -epsilon, epsilon)
    return delta, mask, union | mask, sal

  mask_shape = delta.shape[:3]
  init_mask = fixed_mask if fixed_mask is not None else jnp.zeros(mask_shape, bool)
  delta, _, union, sal = jax.lax.fori_loop(
      0, steps, step, (delta, init_mask, jnp.zeros(mask_shape, bool),
                       jnp.zeros(mask_shape, images.dtype)), unroll=unroll if steps else 1)
  delta = masks_lib.project_to_topk(delta, ratio, sal if ties == "saliency" else None)
  return (delta, union) if return_mask else delta
