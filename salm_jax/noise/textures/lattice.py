"""Class-wise sparse textures: ±ε dots on a regular lattice, the same tile everywhere.

A network that ends in global average pooling sees an image as a bag of local
textures: a pattern repeated over the whole image is in every patch, and a
random crop or flip shifts its phase but leaves it a texture. So the shortcut
here is stationary, and still sparse:

- Support: a `dot`×`dot` block at the centre of every `period`×`period` cell
  (6.25 % of the pixels at the defaults); the count on the actual image must
  stay within `noise.mask_ratio`. Every image of a textured class uses all of it.
- Texture: a tile of `tile`×`tile` lattice points (× channels) of signs from
  `PRNGKey(config.seed)`, repeated over the lattice; δ = sign·ε on the support.
  No two tiles are equal up to a shift (a translation-invariant model could not
  tell them apart), and the first textured class's tile sums to ≥ 0 (with
  `tile=1` on gray images: bright dots).
- Classes (`pattern`): 'onesided' leaves one class bare (`bare`, see
  `texture_class.py`) and gives every other class its own tile; 'antipodal'
  takes two classes, the second tile the negative of the first.
- A dot that would leave [0, 1] is clipped, not flipped: a flipped dot would be
  the other class's texture.
- `min_ssim` > 0 lowers the amplitude of the images that need it, in whole uint8
  levels, so that every written image keeps that SSIM (`ssim_floor.py`).

Model-free; its control is `random_noise` in class mode on the written support
(`noise.random.support_from`): the same pixels and ε, signs tied to positions.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise.textures import class_patterns
from salm_jax.noise.textures import ssim_floor
from salm_jax.noise.textures import texture_class

PATTERNS = ("onesided", "antipodal")
_DRAWS = 1000


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.lattice` block: one dot in every 4×4 cell, one sign per class."""
  return ml_collections.ConfigDict(dict(pattern="onesided", period=4, dot=1, tile=1,
                                        bare="largest", min_ssim=0.0))


def _positive_int(value, name: str, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"noise.lattice.{name} must be an integer ≥ {low}, got {value!r}.")
  return value


def check_config(noise: ml_collections.ConfigDict, task: str | None = None,
                 num_classes: int | None = None) -> None:
  lattice = noise.get("lattice", default_config())
  fields = tuple(default_config().keys())
  unknown = sorted(set(lattice.keys()) - set(fields))
  if unknown:
    raise ValueError(f"noise.lattice has no field {', '.join(unknown)}; its fields are "
                     f"{fields}.")
  pattern = lattice.get("pattern", PATTERNS[0])
  if pattern not in PATTERNS:
    raise ValueError(f"noise.lattice.pattern must be one of {PATTERNS}, got {pattern!r}.")
  texture_class.check(lattice.get("bare", "largest"))
  ssim_floor.check(lattice.get("min_ssim", 0.0), "noise.lattice")
  period = _positive_int(lattice.period, "period", 2)
  dot = _positive_int(lattice.get("dot", 1), "dot", 1)
  _positive_int(lattice.tile, "tile", 1)
  masks_lib.check_ratio(noise.mask_ratio)
  if dot >= period:
    raise ValueError(f"noise.lattice.dot={dot} must be smaller than noise.lattice.period="
                     f"{period}: dots that fill their cells are no lattice.")
  class_patterns.check("lattice", pattern, noise.epsilon, task, num_classes,
                       "'onesided'")


def lattice_support(height: int, width: int, period: int, dot: int = 1) -> np.ndarray:
  """bool (H, W): a dot×dot block at the centre of every period×period cell."""
  return _in_dot(height, period, dot)[:, None] & _in_dot(width, period, dot)[None, :]


def _in_dot(n: int, period: int, dot: int) -> np.ndarray:
  """bool (n,): the positions along one axis that fall in their cell's centred dot."""
  start = (period - dot + 1) // 2
  offset = np.arange(n) % period
  return (offset >= start) & (offset < start + dot)


def _check_fits(support: np.ndarray, ratio: float, period: int) -> None:
  """The lattice on *this* image size keeps within k = masks.num_kept(ratio, H·W) pixels.

  Checked on the image, not on the config: dot²/period² is the fraction only
  when the period divides the image (on 28 px a period of 5 puts 6 dots on each
  axis, 4.6 % rather than 4 %; a period of 8 puts 3, 1.1 % rather than 1.6 %).
  A budget derived from the ratio would miss its PSNR if the count exceeded it.
  """
  h, w = support.shape
  count, k = int(support.sum()), masks_lib.num_kept(ratio, h * w)
  if count > k:
    raise ValueError(f"noise.lattice.period={period} puts {count} dot pixels on a {h}×{w} "
                     f"image ({count / (h * w):.2%}), more than noise.mask_ratio={ratio} "
                     f"allows ({k}); raise noise.mask_ratio to ≥ {count}/{h * w} or the "
                     "period.")


def _shifts(tile: np.ndarray):
  """Every cyclic shift of a (t, t, C) tile: what a translated texture looks like."""
  t = tile.shape[0]
  return (np.roll(tile, (a, b), (0, 1)) for a, b in itertools.product(range(t), range(t)))


def _is_new(tile: np.ndarray, tiles: list[np.ndarray]) -> bool:
  return not any(np.array_equal(s, other) for other in tiles for s in _shifts(tile))


def class_tiles(key: jax.Array, pattern: str, counts: np.ndarray, tile: int,
                channels: int, bare: int | None = None) -> np.ndarray:
  """(K, tile, tile, C) in {-1, 0, 1}: each class's tile, no two equal up to a shift.

  `bare`: the class a one-sided pattern leaves untouched (None: the largest).
  The tiles are flipped as a whole so that the first textured class's sums to ≥ 0.
  """
  k = len(counts)
  bare = int(np.argmax(counts)) if bare is None else bare
  patterned = [c for c in range(k) if pattern == "antipodal" or c != bare]
  draws = iter(np.array(jax.random.rademacher(key, (_DRAWS, tile, tile, channels),
                                              dtype=jnp.float32)))
  out = np.zeros((k, tile, tile, channels), np.float32)
  if not patterned:
    return out
  need = 1 if pattern == "antipodal" else len(patterned)  # antipodal: the second is −first
  tiles: list[np.ndarray] = []
  for _ in range(_DRAWS):
    if len(tiles) == need:
      break
    candidate = next(draws)
    if pattern == "antipodal" and not _is_new(-candidate, [candidate]):
      continue
    if _is_new(candidate, tiles):
      tiles.append(candidate)
  if pattern == "antipodal" and tiles:
    tiles.append(-tiles[0])
  if len(tiles) < len(patterned):
    raise ValueError(f"{len(patterned)} classes need that many textures distinct up to a "
                     f"shift; tiles of {tile}×{tile}×{channels} signs do not give them. Raise "
                     "noise.lattice.tile.")
  out[patterned] = np.stack(tiles) * (1.0 if tiles[0].sum() >= 0 else -1.0)
  return out


def textures(tiles: np.ndarray, support: np.ndarray, period: int) -> np.ndarray:
  """(K, H, W, C): each class's tile repeated cell by cell, 0 off the (H, W) support."""
  tile = tiles.shape[1]
  rows = (np.arange(support.shape[0]) // period) % tile
  cols = (np.arange(support.shape[1]) // period) % tile
  return np.where(support[None, :, :, None], tiles[:, rows][:, :, cols], 0.0)


def _amplitudes(min_ssim: float, images: np.ndarray, signs: np.ndarray,
                epsilon: float) -> np.ndarray:
  """(N, 1, 1, 1): ε for every image, or under `min_ssim` > 0 what the floor allows it."""
  if not min_ssim:
    return np.full((len(images), 1, 1, 1), epsilon)
  return ssim_floor.amplitudes(images, signs, epsilon, min_ssim)[:, None, None, None]


def make_noise(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
               task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
  """Lattice textures for `images` (float32 NHWC in [0, 1]): (delta, masks, details)."""
  noise = config.noise
  check_config(noise, task, num_classes)
  lattice = noise.get("lattice", default_config())
  _, h, w, c = images.shape
  period, tile = int(lattice.period), int(lattice.tile)
  if period * tile > min(h, w):
    raise ValueError(f"A tile of {tile}×{tile} cells of {period} px does not fit a {h}×{w} "
                     "image; lower noise.lattice.period or tile.")
  classes = np.asarray(labels)[:, 0].astype(np.int64)
  counts = np.bincount(classes, minlength=num_classes)
  bare = lattice.get("bare", "largest")
  contrast = (texture_class.class_contrast(images, classes, num_classes)
              if bare == "busiest" else None)
  tiles = class_tiles(jax.random.PRNGKey(config.seed), lattice.pattern, counts, tile, c,
                      texture_class.bare_class(counts, bare, contrast))
  support = lattice_support(h, w, period, int(lattice.get("dot", 1)))
  _check_fits(support, noise.mask_ratio, period)
  signs = textures(tiles, support, period)[classes]
  min_ssim, epsilon = float(lattice.get("min_ssim", 0.0)), float(noise.epsilon)
  amplitude = _amplitudes(min_ssim, images, signs, epsilon)
  x = images.astype(np.float64)
  delta = (np.clip(x + signs * amplitude, 0.0, 1.0) - x).astype(np.float32)
  masks = (np.abs(signs) * amplitude).max(-1) > 0
  textured = np.abs(tiles).max((1, 2, 3)) > 0
  patterned = textured[classes]  # the images of a class that has a texture
  full = (amplitude[:, 0, 0, 0] == epsilon) & (masks.sum((1, 2)) == support.sum())
  details = {"lattice": {
      "pattern": lattice.pattern, "bare": bare,
      # each class's mean local contrast, when it chose the bare class
      "class_contrast": None if contrast is None else [
          None if np.isnan(v) else round(float(v), 6) for v in contrast],
      "period": period, "dot": int(lattice.get("dot", 1)), "tile": tile,
      "support_pixels": int(support.sum()),
      "classes_without_noise": np.flatnonzero(~textured).tolist(),
      "min_ssim": min_ssim,
      # images of a textured class that the SSIM floor weakened, or emptied
      "images_lowered": int((patterned & ~full).sum()),
      "images_left_clean": int((patterned & ~masks.any((1, 2))).sum())}}
  return delta, masks, details
