"""Input preprocessing an unauthorized trainer may apply to suspect data.

These are the "image shortcut squeezing" defenses (JPEG, blur, median filter,
bit-depth reduction, grayscale) and the crops that medical pipelines apply
anyway (the SALM paper claims its noise survives cropping). Each is a pure,
jittable function on float NHWC batches in [0, 1]; only `random_crop_resize`
draws randomness, from its explicit key. Shapes are kept: grayscale keeps the
channel count (the gray plane is repeated) and crops are resized back, so one
model fits every defense.
"""
from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp

from salm_jax.evaluation.defenses.jpeg import jpeg  # noqa: F401  (re-exported: part of this family)


def gaussian_blur(x: jax.Array, sigma: float = 1.0, kernel: int = 3) -> jax.Array:
  """Gaussian blur with a `kernel`×`kernel` window (dm-pix)."""
  return dm_pix.gaussian_blur(x, sigma, kernel)


def median_filter(x: jax.Array, size: int = 3) -> jax.Array:
  """Median over each `size`×`size` neighbourhood, edges reflected."""
  b, h, w, c = x.shape
  r = size // 2
  xp = jnp.pad(x, ((0, 0), (r, size - 1 - r), (r, size - 1 - r), (0, 0)), mode="reflect")
  windows = [xp[:, i:i + h, j:j + w, :] for i in range(size) for j in range(size)]
  return jnp.median(jnp.stack(windows, axis=0), axis=0)


def bit_depth(x: jax.Array, bits: int = 4) -> jax.Array:
  """Quantizes each channel to 2**bits levels."""
  levels = 2.0 ** bits - 1.0
  return jnp.round(x * levels) / levels


def grayscale(x: jax.Array) -> jax.Array:
  """RGB -> luma (Rec. 601), repeated over 3 channels. RGB input only."""
  if x.shape[-1] != 3:
    raise ValueError(f"grayscale needs RGB images (3 channels); these have {x.shape[-1]}.")
  return dm_pix.rgb_to_grayscale(x, keep_dims=True)  # the luma plane, 3 times


def center_crop_resize(x: jax.Array, scale: float = 0.875) -> jax.Array:
  """Keeps the central `scale` fraction of each side, resized back (bilinear)."""
  b, h, w, c = x.shape
  ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
  top, left = (h - ch) // 2, (w - cw) // 2
  crop = x[:, top:top + ch, left:left + cw, :]
  return jax.image.resize(crop, (b, h, w, c), method="linear")


def random_crop_resize(x: jax.Array, key: jax.Array, min_scale: float = 0.75) -> jax.Array:
  """A random square crop of side s ∈ [min_scale, 1] × image side, resized back."""
  b, h, w, c = x.shape
  k_s, k_y, k_x = jax.random.split(key, 3)
  s = jax.random.uniform(k_s, (b,), minval=min_scale, maxval=1.0)
  oy = jax.random.uniform(k_y, (b,)) * (1.0 - s) * h
  ox = jax.random.uniform(k_x, (b,)) * (1.0 - s) * w

  def one(im, s, oy, ox):
    return jax.image.scale_and_translate(
        im, (h, w, c), (0, 1), jnp.stack([1 / s, 1 / s]), jnp.stack([-oy / s, -ox / s]),
        method="linear", antialias=False)

  return jax.vmap(one)(x, s, oy, ox)
