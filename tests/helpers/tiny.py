"""Tiny synthetic data and configs shared by the core tests."""
import ml_collections
import numpy as np

from salm_jax.noise.salm import generator, surrogate


def blobs(n: int = 64, size: int = 12, channels: int = 1, seed: int = 0):
  """Sparse images: dark background, one bright blob whose size is the class."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, (n, 1)).astype(np.int64)
  yy, xx = np.mgrid[:size, :size]
  images = rng.uniform(0, 0.05, (n, size, size, channels)).astype(np.float32)
  for i in range(n):
    cy, cx = rng.integers(3, size - 3, 2)
    radius = 2.5 if labels[i, 0] else 1.2
    images[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] += 0.8
  return np.clip(images, 0, 1), labels


def config(**noise) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(seed=0, noise=generator.default_config(),
                                       surrogate=surrogate.default_config()))
  cfg.surrogate.width = 4
  cfg.surrogate.batch_size = 32
  cfg.noise.pgd_steps = 4
  cfg.noise.train_steps = 4
  cfg.noise.step_size = 2 / 255
  cfg.noise.min_rounds = 1
  cfg.noise.max_rounds = 3
  cfg.noise.mode = "sample"
  cfg.noise.pgd_batch_size = 32
  cfg.noise.update(noise)
  return cfg
