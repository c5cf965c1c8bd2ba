"""Class-wise sign patterns on the flattest pixels: a model-free shortcut at SALM's budget.

A class-wise pattern is a shortcut only if a model can tell it from the image
it sits on. On the pixels SALM picks (the most salient: the lesion and its
edges) a ±8/255 pattern competes with the content that varies most between
images; on pixels where every image is locally flat the same pattern stands
out from its neighbours in every image.

- Support: the k = masks.num_kept(mask_ratio, H·W) pixels (at most mask_ratio
  of them) with the lowest mean local high-pass energy |x − mean_{w×w}(x)| over
  the images being protected (channels summed, edges padded by replication),
  one support for every image.
- Pattern (`noise.flat.pattern`), ±ε per pixel and channel from
  `PRNGKey(config.seed)`:
    independent  one random sign pattern per class;
    antipodal    two classes, the second the negative of the first;
    onesided     every class but the largest its own pattern, the largest
                 none: a class that *has* a texture and one that has not is
                 a difference even a global-average-pooling model can see.
- A sign that would leave [0, 1] is flipped (`random_noise.feasible_noise`),
  so every support pixel of a patterned image changes by exactly ε.

No model is trained, so the support cannot be "salient" by construction:
compare with `random_noise` on SALM's support and on a random one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from salm_jax.noise.textures import class_patterns
from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise.baselines import random_noise

PATTERNS = ("independent", "antipodal", "onesided")


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.flat` block. 'onesided' is the default: any number of classes,
  and the lowest 40 dB zoo mean measured on BreastMNIST (docs/RESULTS.md)."""
  return ml_collections.ConfigDict(dict(pattern="onesided", window=3))


def check_config(noise: ml_collections.ConfigDict, task: str | None = None,
                 num_classes: int | None = None) -> None:
  flat = noise.get("flat", default_config())
  if flat.pattern not in PATTERNS:
    raise ValueError(f"noise.flat.pattern must be one of {PATTERNS}, got {flat.pattern!r}.")
  if isinstance(flat.window, bool) or not isinstance(flat.window, int) or (
      flat.window < 3 or flat.window % 2 == 0):
    raise ValueError(f"noise.flat.window must be an odd integer ≥ 3, got {flat.window!r}.")
  class_patterns.check("flat", flat.pattern, noise.epsilon, task, num_classes,
                       "'independent' or 'onesided'")
  masks_lib.check_ratio(noise.mask_ratio)


def flat_support(images: np.ndarray, mask_ratio: float, window: int = 3) -> np.ndarray:
  """bool (H, W): the pixels with the lowest mean |x − local mean| over `images` (NHWC)."""
  x = images.astype(np.float64).sum(-1)
  n, h, w = x.shape
  r = window // 2
  padded = np.pad(x, ((0, 0), (r, r), (r, r)), mode="edge")
  local = sum(padded[:, i:i + h, j:j + w] for i in range(window) for j in range(window))
  energy = np.abs(x - local / window ** 2).mean(0)
  k = masks_lib.num_kept(mask_ratio, h * w)
  mask = np.zeros(h * w, bool)
  mask[np.argsort(energy, axis=None, kind="stable")[:k]] = True
  return mask.reshape(h, w)


def class_signs(key: jax.Array, pattern: str, counts: np.ndarray, shape) -> np.ndarray:
  """(K, H, W, C) in {-1, 0, 1}: each class's sign pattern (see the module docstring)."""
  k = len(counts)
  signs = np.array(jax.random.rademacher(key, (k,) + tuple(shape), dtype=jnp.float32))
  if pattern == "antipodal":
    signs[1:] = -signs[:1]
  elif pattern == "onesided":
    signs[int(np.argmax(counts))] = 0.0
  return signs


def make_noise(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
               task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
  """Flat-support class patterns for `images` (float32 NHWC in [0, 1]): (delta, masks, details)."""
  noise = config.noise
  check_config(noise, task, num_classes)
  flat = noise.get("flat", default_config())
  classes = np.asarray(labels)[:, 0].astype(np.int64)
  support = flat_support(images, float(noise.mask_ratio), int(flat.window))
  counts = np.bincount(classes, minlength=num_classes)
  signs = class_signs(jax.random.PRNGKey(config.seed), flat.pattern, counts, images.shape[1:])
  patterned = np.abs(signs).max((1, 2, 3)) > 0
  masks = support[None] & patterned[classes][:, None, None]
  delta = random_noise.feasible_noise(images, signs[classes], masks, float(noise.epsilon))
  details = {"flat": {"pattern": flat.pattern, "window": int(flat.window),
                      "support_pixels": int(support.sum()),
                      "classes_without_noise": np.flatnonzero(~patterned).tolist()}}
  return delta, masks, details
