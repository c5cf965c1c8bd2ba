"""Class-wise sparse textures: ±ε dots on a regular lattice, the same tile everywhere.

Why it is here: every sparse method measured before this one ties its pattern
to pixel *positions* (SALM's class support, the flat pixels, OPS's pixel), and
none moves the small CNN at 40 dB (docs/RESULTS.md). A network that ends in
global average pooling sees an image as a bag of local textures: a pattern at
fixed positions is one small patch among many, but a pattern repeated over the
whole image is in every patch, and a 3×3 filter that detects it fires
everywhere. A random crop or flip shifts such a texture's phase and leaves it a
texture. So the shortcut here is stationary, and still sparse:

- Support: a `dot`×`dot` block at the centre of every `period`×`period`
  cell: dot²/period² of the pixels when the period divides the image, 6.25 %
  at the defaults (one pixel every 4×4); the count on the actual image must
  stay within `noise.mask_ratio`. Every image of a patterned class uses all
  of it. Larger dots at a larger period keep the fraction and survive pooling
  and resampling better.
- Texture: a tile of `tile`×`tile` lattice points (× channels) of signs,
  repeated over the lattice; δ = sign·ε on the support. With the default
  `tile=1` a class's texture is one sign per channel: bright or dark dots.
- Classes (`noise.lattice.pattern`):
    onesided   one class none, every other class its own tile (the default:
               a class that has a texture against one that has not). Which
               class stays bare is `noise.lattice.bare`: 'largest' (fewest
               images changed) or 'smallest' (the texture on the majority);
    antipodal  two classes, the second tile the negative of the first.
  Tiles differ from each other by more than a shift of the lattice, since a
  translation-invariant model cannot tell shifted textures apart. Signs come
  from `PRNGKey(config.seed)`, flipped as a whole so that the first textured
  class's tile sums to ≥ 0 (with `tile=1` on gray images: bright dots).
- A dot that would leave [0, 1] goes as far as it can (clipped, not flipped:
  a flipped dot would be the other class's texture).
- `noise.lattice.min_ssim` > 0 lowers the amplitude of the images that need
  it, in whole uint8 levels, so that every written image keeps that SSIM
  (`ssim_floor.py`); positions and signs stay the class's.

Model-free, like `flat_support`; its control is `random_noise` in class mode
on the written support (`noise.random.support_from`), which has the same
pixels and ε but signs tied to positions.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from salm_jax.noise import class_patterns
from salm_jax.noise import masks as masks_lib
from salm_jax.noise import ssim_floor

PATTERNS = ("onesided", "antipodal")
BARE = ("largest", "smallest")
_DRAWS = 1000


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.lattice` block: one dot in every 4×4 cell, one sign per class."""
  return ml_collections.ConfigDict(dict(pattern="onesided", period=4, dot=1, tile=1,
                                        bare="largest", min_ssim=0.0,
                                        ssim_floor="amplitude"))


def _positive_int(value, name: str, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"noise.lattice.{name} must be an integer ≥ {low}, got {value!r}.")
  return value


def check_config(noise: ml_collections.ConfigDict, task: str | None = None,
                 num_classes: int | None = None) -> None:
  lattice = noise.get("lattice", default_config())
  if lattice.pattern not in PATTERNS:
    raise ValueError(f"noise.lattice.pattern must be one of {PATTERNS}, got "
                     f"{lattice.pattern!r}.")
  if lattice.get("bare", "largest") not in BARE:
    raise ValueError(f"noise.lattice.bare must be one of {BARE}, got {lattice.bare!r}.")
  ssim_floor.check(lattice.get("min_ssim", 0.0), lattice.get("ssim_floor", "amplitude"),
                   "noise.lattice")
  period = _positive_int(lattice.period, "period", 2)
  dot = _positive_int(lattice.get("dot", 1), "dot", 1)
  _positive_int(lattice.tile, "tile", 1)
  masks_lib.check_ratio(noise.mask_ratio)
  if dot >= period:
    raise ValueError(f"noise.lattice.dot={dot} must be smaller than noise.lattice.period="
                     f"{period}: dots that fill their cells are no lattice.")
  class_patterns.check("lattice", lattice.pattern, noise.epsilon, task, num_classes,
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
  """The lattice on *this* image size keeps within k = ceil(ratio·H·W) pixels.

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


def bare_class(counts: np.ndarray, bare: str = "largest") -> int:
  """The class a one-sided pattern leaves untouched (the first one on a tie)."""
  return int(np.argmax(counts) if bare == "largest" else np.argmin(counts))


def class_tiles(key: jax.Array, pattern: str, counts: np.ndarray, tile: int,
                channels: int, bare: str = "largest") -> np.ndarray:
  """(K, tile, tile, C) in {-1, 0, 1}: each class's tile, no two equal up to a shift."""
  k = len(counts)
  patterned = [c for c in range(k)
               if pattern == "antipodal" or c != bare_class(counts, bare)]
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


def _under_ssim_floor(lattice, images: np.ndarray, signs: np.ndarray,
                      epsilon: float) -> tuple[np.ndarray, np.ndarray]:
  """(per-image amplitude, signs) after `noise.lattice.min_ssim` (see ssim_floor.py)."""
  min_ssim = float(lattice.get("min_ssim", 0.0))
  full = np.full(len(images), epsilon)
  if not min_ssim:
    return full, signs
  if lattice.get("ssim_floor", "amplitude") == "amplitude":
    return ssim_floor.amplitudes(images, signs, epsilon, min_ssim), signs
  keep = ssim_floor.kept_dots(images, signs, epsilon, min_ssim)
  return full, signs * keep[..., None]


def make_noise(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
               task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
  """Lattice textures for `images` (float32 NHWC in [0, 1]): (delta, masks, details)."""
  noise = config.noise
  check_config(noise, task, num_classes)
  lattice = noise.get("lattice", default_config())
  _, h, w, c = images.shape
  if lattice.period * lattice.tile > min(h, w):
    raise ValueError(f"A tile of {lattice.tile}×{lattice.tile} cells of {lattice.period} px "
                     f"does not fit a {h}×{w} image; lower noise.lattice.period or tile.")
  classes = np.asarray(labels)[:, 0].astype(np.int64)
  counts = np.bincount(classes, minlength=num_classes)
  tiles = class_tiles(jax.random.PRNGKey(config.seed), lattice.pattern, counts,
                      lattice.tile, c, lattice.get("bare", "largest"))
  dot = int(lattice.get("dot", 1))
  support = lattice_support(h, w, lattice.period, dot)
  _check_fits(support, noise.mask_ratio, lattice.period)
  signs = textures(tiles, support, lattice.period)[classes]
  x = images.astype(np.float64)
  amplitude, signs = _under_ssim_floor(lattice, images, signs, float(noise.epsilon))
  delta = (np.clip(x + signs * amplitude[:, None, None, None], 0.0, 1.0) - x).astype(np.float32)
  masks = (np.abs(signs).max(-1) > 0) & (amplitude > 0)[:, None, None]
  textured = np.abs(tiles).max((1, 2, 3)) > 0
  patterned = textured[classes]  # the images of a class that has a texture
  full = patterned & (amplitude == float(noise.epsilon)) & (masks.sum((1, 2)) == support.sum())
  details = {"lattice": {
      "pattern": lattice.pattern, "bare": lattice.get("bare", "largest"),
      "period": int(lattice.period), "dot": dot, "tile": int(lattice.tile),
      "support_pixels": int(support.sum()),
      "classes_without_noise": np.flatnonzero(~textured).tolist(),
      "min_ssim": float(lattice.get("min_ssim", 0.0)),
      "ssim_floor": lattice.get("ssim_floor", "amplitude"),
      # images of a textured class that the SSIM floor weakened, or emptied
      "images_lowered": int((patterned & ~full).sum()),
      "images_left_clean": int((patterned & ~masks.any((1, 2))).sum())}}
  return delta, masks, details
