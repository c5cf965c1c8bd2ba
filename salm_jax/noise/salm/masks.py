"""Top-k pixel masks: where SALM is allowed to put noise.

SALM's premise is that a medical image's signal sits in a few pixels, so each
PGD step only touches the k = floor(ratio·H·W) most salient pixels of each
image. The mask is one H×W map per image, shared by all channels.

`topk_mask` keeps exactly k pixels even when scores tie: ties go to the larger
`ties` score when one is given, then to the lower flat (row-major) index. NaN
scores rank last, so a NaN gradient can never pull a pixel into the mask.

The tie score matters at the end of a round. After a few steps most touched
pixels sit at exactly ±ε, so ranking |δ| alone would keep the first k of them
in raster order (the top rows of the image). `project_to_topk` breaks those
ties by saliency, so the pixels δ keeps are the most salient of the saturated.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from salm_jax.noise.salm import saliency


def check_ratio(ratio) -> float:
  """Returns `ratio` as a float if it is a valid mask ratio in (0, 1], else raises."""
  if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
    raise TypeError(f"mask_ratio must be a number in (0, 1], got {ratio!r} "
                    f"({type(ratio).__name__}).")
  value = float(ratio)
  if math.isnan(value) or not 0.0 < value <= 1.0:
    raise ValueError(f"mask_ratio must be in (0, 1], got {ratio!r}.")
  return value


def num_kept(ratio: float, num_pixels: int) -> int:
  """k = floor(ratio · num_pixels), at least 1: a mask never covers more than its ratio.

  Immune to float noise such as 0.07·100 = 7.000000000000001 or 0.29·100 = 28.999999999999996.
  """
  ratio = check_ratio(ratio)
  k = math.floor(round(ratio * num_pixels, 9))
  return max(1, min(num_pixels, k))


def topk_mask(scores: jax.Array, ratio: float, ties: jax.Array | None = None) -> jax.Array:
  """Boolean (B, H, W) mask of the top floor(ratio·H·W) pixels of each (H, W) score map.

  Args:
    scores: (B, H, W) per-pixel scores, e.g. from `pixel_saliency`.
    ratio: fraction of pixels kept per image, in (0, 1]. A Python number: it
      fixes k, hence the shapes, so it is static under `jit`.
    ties: optional (B, H, W) second key: among equal scores the larger wins.

  Returns:
    bool (B, H, W) with exactly k True entries per image.
  """
  if scores.ndim != 3:
    raise ValueError(f"scores must be (B, H, W), got shape {scores.shape}.")
  batch, height, width = scores.shape
  k = num_kept(ratio, height * width)
  if k == height * width:
    return jnp.ones(scores.shape, dtype=bool)
  flat = scores.reshape(batch, height * width)
  flat = jnp.where(jnp.isnan(flat), -jnp.inf, flat)
  if ties is None:
    _, idx = jax.lax.top_k(flat, k)
  else:  # lexicographic (score, tie) descending, then the lower index: a stable sort
    second = ties.reshape(batch, height * width)
    second = jnp.where(jnp.isnan(second), -jnp.inf, second)
    order = jnp.broadcast_to(jnp.arange(height * width), flat.shape)
    *_, order = jax.lax.sort((-flat, -second, order), dimension=1, is_stable=True, num_keys=2)
    idx = order[:, :k]
  rows = jnp.arange(batch)[:, None]
  mask = jnp.zeros((batch, height * width), dtype=bool).at[rows, idx].set(True)
  return mask.reshape(batch, height, width)


def project_to_topk(delta: jax.Array, ratio: float, ties: jax.Array | None = None) -> jax.Array:
  """Keeps each image's k largest-|δ| pixels (Σ over channels) and zeroes the rest.

  Among equal |δ| the larger `ties` (B, H, W) score wins, e.g. the last step's
  saliency. After this, ‖δ_i‖₀ ≤ k pixels for every image (channels count once).
  """
  mask = topk_mask(saliency.reduce_channels(delta), ratio, ties)
  return jnp.where(mask[..., None], delta, jnp.zeros_like(delta))
