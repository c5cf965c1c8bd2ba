"""Which class a one-sided texture leaves bare, chosen from the images themselves.

A victim learns a one-sided texture of bright dots as "dots → the textured
class". Clean test images have no dots, and there its dot detectors see the
image's own fine structure instead: speckle, vessel edges, single bright
pixels. On the class whose clean images have the least of that structure the
learned shortcut points the wrong way on clean data; on the class with the
most it agrees with a real difference, and the victim keeps its ranking. So
'busiest' leaves bare the class with the highest mean local contrast
(`local_contrast`: the mean |pixel − mean of its 8 neighbours|), a rule that
needs no model and no labels beyond the ones being protected (measured in
docs/RESULTS.md).

  'largest'   the class with the most images (fewest images changed);
  'smallest'  the class with the fewest (the texture on the majority);
  'busiest'   the class with the highest mean local contrast.
"""
from __future__ import annotations

import numpy as np

BARE = ("largest", "smallest", "busiest")


def check(bare) -> str:
  if bare not in BARE:
    raise ValueError(f"noise.lattice.bare must be one of {BARE}, got {bare!r}.")
  return bare


def contrast_map(images: np.ndarray) -> np.ndarray:
  """float64, the images' shape: each pixel minus the mean of its 8 neighbours.

  `images` NHWC or NHW (gray); edges are replicated, so a frame adds nothing.
  """
  x = np.asarray(images, np.float64)
  h, w = x.shape[1:3]
  pad = ((0, 0), (1, 1), (1, 1)) + ((0, 0),) * (x.ndim - 3)
  p = np.pad(x, pad, mode="edge")
  ring = sum(p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
             for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
  return x - ring / 8.0


def local_contrast(images: np.ndarray) -> np.ndarray:
  """float64 (N,): mean over pixels and channels of |x − mean of its 8 neighbours|.

  Any range (float in [0, 1] or uint8 levels: the ranking of classes is the same).
  """
  return np.abs(contrast_map(images)).reshape(len(images), -1).mean(axis=1)


def class_contrast(images: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
  """float64 (K,): each class's mean local contrast (NaN for a class without images)."""
  per_image = local_contrast(images)
  counts = np.bincount(classes, minlength=num_classes)
  sums = np.bincount(classes, weights=per_image, minlength=num_classes)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def bare_class(counts: np.ndarray, bare: str = "largest",
               contrast: np.ndarray | None = None) -> int:
  """The class a one-sided pattern leaves untouched (the first one on a tie).

  'busiest' needs `contrast` (from `class_contrast`); classes without images
  are never chosen.
  """
  check(bare)
  if bare == "busiest":
    if contrast is None:
      raise ValueError("bare='busiest' needs each class's local contrast (class_contrast).")
    return int(np.nanargmax(np.where(np.asarray(counts) > 0, contrast, np.nan)))
  return int(np.argmax(counts) if bare == "largest" else np.argmin(counts))
