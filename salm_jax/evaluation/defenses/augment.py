"""The trainer's usual data augmentations, on float NHWC batches in [0, 1].

An unauthorized trainer augments as a matter of course, and augmentation is
known to weaken some unlearnable examples, so each one is a victim option.
Every function is pure and jittable: (x, key, **params) -> x, with the
randomness drawn per image from `key`. The two that mix images (mixup,
cutmix) also mix the soft targets: (x, targets, key, **params) -> (x, targets),
where targets are one-hot rows (softmax tasks) or 0/1 label rows (multi-label),
so one rule serves both the softmax and the sigmoid losses.
"""
from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp


def crop_pad(x: jax.Array, key: jax.Array, padding: int = 4) -> jax.Array:
  """Zero-pads each side by `padding` px, then crops back at a random offset."""
  b, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * padding + 1)
  crop = lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c))
  return jax.vmap(crop)(xp, offsets)


def hflip(x: jax.Array, key: jax.Array, p: float = 0.5) -> jax.Array:
  """Mirrors each image left-right with probability `p`."""
  flip = jax.random.bernoulli(key, p, (x.shape[0], 1, 1, 1))
  return jnp.where(flip, x[:, :, ::-1, :], x)


def rotate(x: jax.Array, key: jax.Array, degrees: float = 15.0) -> jax.Array:
  """Rotates each image by a uniform angle in [-degrees, degrees], zero fill."""
  angles = jax.random.uniform(key, (x.shape[0],), minval=-degrees, maxval=degrees)
  rot = lambda im, a: dm_pix.rotate(im, jnp.deg2rad(a), order=1, mode="constant", cval=0.0)
  return jax.vmap(rot)(x, angles)


def _box_mask(shape, cy, cx, half_h, half_w):
  """(B, H, W, 1) mask of the boxes |row - cy| < half_h, |col - cx| < half_w (clipped)."""
  _, h, w, _ = shape
  rows = jnp.arange(h)[None, :, None]
  cols = jnp.arange(w)[None, None, :]
  inside = ((rows >= (cy - half_h)[:, None, None]) & (rows < (cy + half_h)[:, None, None])
            & (cols >= (cx - half_w)[:, None, None]) & (cols < (cx + half_w)[:, None, None]))
  return inside[..., None]


def cutout(x: jax.Array, key: jax.Array, frac: float = 0.5) -> jax.Array:
  """Zeroes a square of side `frac` × image side at a random centre (DeVries & Taylor)."""
  b, h, w, _ = x.shape
  ky, kx = jax.random.split(key)
  cy = jax.random.randint(ky, (b,), 0, h)
  cx = jax.random.randint(kx, (b,), 0, w)
  half = jnp.full((b,), frac * h / 2.0)
  half_w = jnp.full((b,), frac * w / 2.0)
  return jnp.where(_box_mask(x.shape, cy, cx, half, half_w), 0.0, x)


def _beta(key: jax.Array, alpha: float) -> jax.Array:
  """λ ~ Beta(α, α); for the default α = 1 that is Uniform(0, 1), sampled directly
  (jax's gamma-based Beta sampler is slow to compile on CPU)."""
  if float(alpha) == 1.0:
    return jax.random.uniform(key)
  return jax.random.beta(key, alpha, alpha)


def _shuffle(key: jax.Array, n: int) -> jax.Array:
  """A uniformly random permutation of range(n) (argsort of uniforms)."""
  return jnp.argsort(jax.random.uniform(key, (n,)))


def mixup(x: jax.Array, targets: jax.Array, key: jax.Array,
          alpha: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """x and targets blended with a shuffled copy by λ ~ Beta(α, α) (Zhang et al.)."""
  k_lam, k_perm = jax.random.split(key)
  lam = _beta(k_lam, alpha)
  perm = _shuffle(k_perm, x.shape[0])
  return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]


def cutmix(x: jax.Array, targets: jax.Array, key: jax.Array,
           alpha: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """A box of a shuffled copy pasted in; targets mixed by the box's true area (Yun et al.)."""
  b, h, w, _ = x.shape
  k_lam, k_perm, ky, kx = jax.random.split(key, 4)
  lam = _beta(k_lam, alpha)
  perm = _shuffle(k_perm, b)
  ratio = jnp.sqrt(1.0 - lam)
  cy = jnp.broadcast_to(jax.random.randint(ky, (), 0, h), (b,))
  cx = jnp.broadcast_to(jax.random.randint(kx, (), 0, w), (b,))
  mask = _box_mask(x.shape, cy, cx, jnp.full((b,), ratio * h / 2), jnp.full((b,), ratio * w / 2))
  lam_area = 1.0 - mask[0].mean()
  return jnp.where(mask, x[perm], x), lam_area * targets + (1 - lam_area) * targets[perm]
