"""Per-image amplitude under an SSIM floor, for class-wise sparse patterns.

One-pixel dots cost every image the same PSNR, but not the same SSIM: on a
flat, dark stretch of an ultrasound or X-ray a dot is all the local structure
there is, and SSIM falls far more than PSNR says. `amplitudes` gives each image
the largest amplitude, in whole uint8 levels up to ε, whose written image keeps
SSIM ≥ `min_ssim`. Every dot stays, with the pattern's positions and signs (what
a victim learns); only its strength drops, and only on the images that need it.

PSNR can only rise. An image that cannot keep the floor with any dot is left
untouched. SSIM is measured as the reports measure it (`evaluation.utility`),
on the uint8 values the file will hold.
"""
from __future__ import annotations

import numpy as np

from salm_jax.data import dataset
from salm_jax.data import protected as protected_lib
from salm_jax.evaluation import utility


def check(min_ssim, field: str) -> float:
  """`min_ssim` as a float in [0, 1) (0 turns the floor off); `field` names the config block."""
  if isinstance(min_ssim, bool) or not isinstance(min_ssim, (int, float)) or not (
      0.0 <= min_ssim < 1.0):
    raise ValueError(f"{field}.min_ssim must be a number in [0, 1) (0 turns the floor off), "
                     f"got {min_ssim!r}.")
  return float(min_ssim)


def _ssim(clean: np.ndarray, signs: np.ndarray, level: int) -> np.ndarray:
  """Per-image SSIM of the written uint8 image clean + signs·level (whole uint8 levels)."""
  written = np.clip(clean.astype(np.int16) + signs.astype(np.int16) * level, 0, 255)
  return utility.per_image_stats(clean, written.astype(np.uint8))["ssim"]


def amplitudes(images: np.ndarray, signs: np.ndarray, epsilon: float,
               min_ssim: float) -> np.ndarray:
  """(N,) amplitude per image in [0, ε]: ε where the floor allows it, else fewer levels.

  images: float (N, H, W, C) in [0, 1] (uint8 / 255); signs: (N, H, W, C) in
  {-1, 0, 1}, the pattern. The result is ε itself for an image that meets the
  floor at full strength, so turning the floor on changes nothing there, and 0
  for an image that meets it at no level. Levels go from ε down, and only the
  images no higher level settled are measured again.
  """
  clean = dataset.as_uint8_like(images, images)
  levels = list(range(protected_lib.linf_bound(epsilon), 0, -1))
  choice = np.full(len(clean), len(levels))
  for i, level in enumerate(levels):
    todo = np.flatnonzero(choice == len(levels))
    if not len(todo):
      break
    choice[todo[_ssim(clean[todo], signs[todo], level) >= min_ssim]] = i
  return np.array([epsilon] + [level / 255.0 for level in levels[1:]] + [0.0])[choice]
