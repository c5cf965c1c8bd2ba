"""Baseline JPEG compression (encode then decode) in jnp, for batches.

JPEG is the strongest known "image shortcut squeezing" defense against
unlearnable examples, so victims can train on JPEG-compressed data. Written in
jnp rather than round-tripping through Pillow so that it runs batched and
jitted on the accelerator with the rest of victim training.

The codec: RGB -> YCbCr (JFIF), 8×8 blocks (edges replicated up to a multiple
of 8), orthonormal DCT-II, quantization with the standard (ITU-T T.81 Annex K)
tables scaled by quality as libjpeg does, rounding, then the inverse path and
rounding to 8-bit levels. No chroma subsampling (Pillow's `subsampling=0`),
and floating-point rather than libjpeg's integer DCT, so results match Pillow
to about one gray level, not bit for bit. Channels other than 1 or 3 are each
coded as luminance.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.float32)

CHROMA_TABLE = np.array([
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99]], dtype=np.float32)


def quant_table(base: np.ndarray, quality: int) -> np.ndarray:
  """libjpeg's `jpeg_quality_scaling`: the base table scaled for quality 1..100."""
  if not 1 <= quality <= 100:
    raise ValueError(f"JPEG quality must be in 1..100, got {quality}.")
  scale = 5000 / quality if quality < 50 else 200 - 2 * quality
  return np.clip(np.floor((base * scale + 50) / 100), 1, 255).astype(np.float32)


def _dct_matrix() -> np.ndarray:
  k = np.arange(8)[:, None]
  n = np.arange(8)[None, :]
  d = np.cos(np.pi * (2 * n + 1) * k / 16) * np.sqrt(2 / 8)
  d[0] /= np.sqrt(2)
  return d.astype(np.float32)


_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]], dtype=np.float32)


def _code_planes(planes: jax.Array, tables: jax.Array) -> jax.Array:
  """Planes (B, H, W, C) in 0..255 (H, W multiples of 8), table per channel (C, 8, 8)."""
  b, h, w, c = planes.shape
  d = jnp.asarray(_dct_matrix())
  blocks = (planes - 128.0).reshape(b, h // 8, 8, w // 8, 8, c)
  coef = jnp.einsum("ij,bhjwkc,lk->bhiwlc", d, blocks, d)
  t = jnp.transpose(tables, (1, 2, 0))[None, None, :, None, :, :]  # (1,1,8,1,8,C)
  coef = jnp.round(coef / t) * t
  out = jnp.einsum("ji,bhjwkc,kl->bhiwlc", d, coef, d)
  return out.reshape(b, h, w, c) + 128.0


def jpeg(x: jax.Array, quality: int = 75) -> jax.Array:
  """JPEG-compresses float NHWC images in [0, 1] at `quality` and decodes them."""
  b, h, w, c = x.shape
  quality = int(quality)
  luma = quant_table(LUMA_TABLE, quality)
  chroma = quant_table(CHROMA_TABLE, quality)
  v = jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0)
  ph, pw = -h % 8, -w % 8
  v = jnp.pad(v, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
  if c == 3:
    m = jnp.asarray(_RGB_TO_YCC)
    ycc = jnp.einsum("ij,bhwj->bhwi", m, v) + jnp.array([0.0, 128.0, 128.0])
    ycc = _code_planes(ycc, jnp.asarray(np.stack([luma, chroma, chroma])))
    v = jnp.einsum("ij,bhwj->bhwi", jnp.asarray(np.linalg.inv(_RGB_TO_YCC)),
                   ycc - jnp.array([0.0, 128.0, 128.0]))
  else:
    v = _code_planes(v, jnp.asarray(np.stack([luma] * c)))
  v = jnp.clip(jnp.round(v[:, :h, :w, :]), 0.0, 255.0)
  return (v / 255.0).astype(x.dtype)
