"""The victim's augmentations inside a PGD step: expectation over transformation (EOT).

A victim that trains with random crops and flips sees x + δ moved and
mirrored, and a pattern tied to pixel positions stops being a shortcut.
REM (Fu et al., ICLR 2022) makes the noise for that victim: each PGD step
averages the gradient over random transformations of x + δ. `crop_flip` is
the usual CIFAR/MedMNIST augmentation, pad by `pad` pixels with zeros, crop
back at a random offset, flip left-right with probability 1/2; it is
differentiable in its input, so the gradient reaches δ through it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def crop_flip(images: jax.Array, key: jax.Array, pad: int = 4) -> jax.Array:
  """(B, H, W, C) images, each shifted by up to ±`pad` px (zeros enter) and maybe flipped."""
  b, h, w, _ = images.shape
  k_shift, k_flip = jax.random.split(key)
  offsets = jax.random.randint(k_shift, (b, 2), 0, 2 * pad + 1)
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0),
                                                (h, w, images.shape[-1]))
  shifted = jax.vmap(crop)(padded, offsets)
  flip = jax.random.bernoulli(k_flip, 0.5, (b, 1, 1, 1))
  return jnp.where(flip, shifted[:, :, ::-1], shifted)


def expected_gradient(loss_fn, delta: jax.Array, key: jax.Array, samples: int) -> jax.Array:
  """The mean over `samples` draws of ∇_δ loss_fn(δ, key_s), one key per draw."""
  grads = [jax.grad(loss_fn)(delta, jax.random.fold_in(key, s)) for s in range(samples)]
  return sum(grads[1:], grads[0]) / samples
