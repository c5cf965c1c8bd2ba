"""Dense model-free noise at a fixed L2 norm (AR, LSP): scale each sample, then clip.

Both baselines are published as an L2 budget per image; the image box [0, 1]
then cuts some of it, and the manifest reports both what was asked and what
was written.
"""
from __future__ import annotations

import numpy as np


def scale_and_clip(raw: np.ndarray, images: np.ndarray, l2: float):
  """(δ clipped to the box, its L2 per image, L∞ before the clip, L∞ after) for a chunk."""
  n = len(raw)
  norms = np.sqrt(np.sum(raw.reshape(n, -1) ** 2, axis=1))
  scaled = raw * (l2 / np.where(norms > 0, norms, 1.0))[:, None, None, None]
  x = images.astype(np.float64)
  clipped = np.clip(x + scaled, 0.0, 1.0) - x
  after = np.sqrt(np.sum(clipped.reshape(n, -1) ** 2, axis=1))
  return clipped, after, float(np.abs(scaled).max()), float(np.abs(clipped).max())
