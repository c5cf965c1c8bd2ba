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
  and resampling better. `noise.lattice.placement='peak'` keeps one pixel
  per cell but moves it to the cell's local-contrast peak (`peak_support`):
  the dots then sharpen the image's own fine structure. Measured: stronger
  against the small CNN, weaker against ResNet-18, VGG-16 and the ViT, which
  learn the regular grid (docs/RESULTS.md, round six).
- Other lattices (single pixels, one sign per class; docs/RESULTS.md, round
  eight, measures both and keeps the default's square period-4 lattice):
    skew=s > 0        the pixels (i, j) with i + s·j ≡ c (mod period): one
                      dot in every `period` pixels, so any density 1/n
                      (period 10, skew 3: a square lattice turned by 18°,
                      spacing √10, 9.95 % of 28 px; period 13, skew 5: 7.7 %).
                      At a fixed PSNR the dots' summed amplitude grows as
                      √density, which is what a network that pools sees.
    also_periods=(7,) adds the centred lattices of those periods. A ViT sees
                      a lattice as one offset repeated in every patch only
                      when the period divides its patch, so periods 4 and 7
                      together line up with patches of 4, 7, 14 and 28 px
                      (64 dots on 28 px, 8.2 %; one dot lies on both).
- Texture: a tile of `tile`×`tile` lattice points (× channels) of signs,
  repeated over the lattice; δ = sign·ε on the support. With the default
  `tile=1` a class's texture is one sign per channel: bright or dark dots.
- Classes (`noise.lattice.pattern`):
    onesided   one class none, every other class its own tile (the default:
               a class that has a texture against one that has not). Which
               class stays bare is `noise.lattice.bare`: 'largest' (fewest
               images changed), 'smallest' (the texture on the majority) or
               'busiest' (the class whose clean images have the most local
               contrast: `texture_class.py` says why);
    antipodal  two classes, the second tile the negative of the first.
  Tiles differ from each other by more than a shift of the lattice, since a
  translation-invariant model cannot tell shifted textures apart. Signs come
  from `PRNGKey(config.seed)`, flipped as a whole so that the first textured
  class's tile sums to ≥ 0 (with `tile=1` on gray images: bright dots), or
  to ≤ 0 with `noise.lattice.polarity='dark'`.
- A dot that would leave [0, 1] goes as far as it can (clipped, not flipped:
  a flipped dot would be the other class's texture).
- `noise.lattice.min_ssim` > 0 lowers the amplitude of the images that need
  it, in whole uint8 levels, so that every written image keeps that SSIM
  (`ssim_floor.py`); positions and signs stay the class's. The amplitude is
  one per image (`ssim_floor='amplitude'`), or one per dot that follows the
  clean image's local contrast (`'contrast'`), or ε on the dots that stay
  (`'drop'`).

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

from salm_jax.data import protected as protected_lib
from salm_jax.noise import class_patterns
from salm_jax.noise import masks as masks_lib
from salm_jax.noise import ssim_floor
from salm_jax.noise import texture_class

PATTERNS = ("onesided", "antipodal")
POLARITIES = ("bright", "dark")
PLACEMENTS = ("centre", "peak")
_DRAWS = 1000


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.lattice` block: one dot in every 4×4 cell, one sign per class."""
  return ml_collections.ConfigDict(dict(pattern="onesided", period=4, dot=1, tile=1,
                                        skew=0, also_periods=(), bare="largest",
                                        polarity="bright",
                                        placement="centre", peak_window=0, min_ssim=0.0,
                                        ssim_floor="amplitude"))


def _positive_int(value, name: str, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f"noise.lattice.{name} must be an integer ≥ {low}, got {value!r}.")
  return value


def check_config(noise: ml_collections.ConfigDict, task: str | None = None,
                 num_classes: int | None = None) -> None:
  lattice = noise.get("lattice", default_config())
  for field, options in (("pattern", PATTERNS), ("placement", PLACEMENTS),
                         ("polarity", POLARITIES)):
    value = lattice.get(field, options[0])
    if value not in options:
      raise ValueError(f"noise.lattice.{field} must be one of {options}, got {value!r}.")
  texture_class.check(lattice.get("bare", "largest"))
  if lattice.get("placement", "centre") == "peak" and lattice.get("dot", 1) != 1:
    raise ValueError("noise.lattice.placement='peak' places single pixels; set "
                     "noise.lattice.dot=1.")
  window = lattice.get("peak_window", 0)
  if isinstance(window, bool) or not isinstance(window, int) or window < 0:
    raise ValueError(f"noise.lattice.peak_window must be an integer ≥ 0 (0: the whole cell), "
                     f"got {window!r}.")
  ssim_floor.check(lattice.get("min_ssim", 0.0), lattice.get("ssim_floor", "amplitude"),
                   "noise.lattice")
  period = _positive_int(lattice.period, "period", 2)
  dot = _positive_int(lattice.get("dot", 1), "dot", 1)
  _positive_int(lattice.tile, "tile", 1)
  masks_lib.check_ratio(noise.mask_ratio)
  if dot >= period:
    raise ValueError(f"noise.lattice.dot={dot} must be smaller than noise.lattice.period="
                     f"{period}: dots that fill their cells are no lattice.")
  _check_skew(lattice, period)
  _check_also_periods(lattice)
  class_patterns.check("lattice", lattice.pattern, noise.epsilon, task, num_classes,
                       "'onesided'")


def _check_skew(lattice, period: int) -> None:
  """A skewed lattice is single pixels that never touch."""
  skew = lattice.get("skew", 0)
  if isinstance(skew, bool) or not isinstance(skew, int) or not 0 <= skew < period:
    raise ValueError(f"noise.lattice.skew must be an integer in [0, period={period}) "
                     f"(0: the square lattice), got {skew!r}.")
  if not skew:
    return
  _require_single_pixels(lattice, "noise.lattice.skew > 0")
  if skew in (1, period - 1):
    raise ValueError(f"noise.lattice.skew={skew} with period={period} puts neighbouring "
                     "pixels on one diagonal line, not a lattice; pick a skew in "
                     f"[2, {period - 2}] (period 10: 3).")


def _check_also_periods(lattice) -> None:
  """Extra lattices are square and centred, added to a square lattice of single pixels."""
  also = lattice.get("also_periods", ())
  if isinstance(also, int) or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 2
                                      for p in also):
    raise ValueError(f"noise.lattice.also_periods must be a tuple of integers ≥ 2, got {also!r}.")
  if also:
    _require_single_pixels(lattice, "noise.lattice.also_periods", skew=0)


def _require_single_pixels(lattice, option: str, **more) -> None:
  """`option` places single pixels with one sign per class at the centre placement.

  `more`: further fields it needs at these values. Every needed value is the
  field's default, so an absent field passes.
  """
  need = {"dot": 1, "tile": 1, "placement": "centre", **more}
  if any(lattice.get(field, value) != value for field, value in need.items()):
    settings = ", ".join(f"{field}={value!r}" for field, value in need.items())
    raise ValueError(f"{option} places single pixels with one sign per class on the centred "
                     f"lattice; set noise.lattice.{settings}.")


def lattice_support(height: int, width: int, period: int, dot: int = 1, skew: int = 0,
                    also_periods: tuple[int, ...] = ()) -> np.ndarray:
  """bool (H, W): a dot×dot block at the centre of every period×period cell.

  With `skew` > 0: the pixels with i + skew·j ≡ c (mod period), one in every
  `period`. Of the residues c, the one with the fewest pixels on this image
  (on 28 px at period 10: 78 = 9.95 %, not 79), then the one nearest to the
  residue of the image's centre pixel. `also_periods` adds the single-pixel
  centred lattice of each of those periods.
  """
  if skew:
    residue = (np.arange(height)[:, None] + skew * np.arange(width)[None, :]) % period
    counts = np.bincount(residue.ravel(), minlength=period)
    centre = (height // 2 + skew * (width // 2)) % period
    best = min(range(period), key=lambda c: (counts[c], (c - centre) % period))
    support = residue == best
  else:
    support = _in_dot(height, period, dot)[:, None] & _in_dot(width, period, dot)[None, :]
  for extra in also_periods:
    support = support | lattice_support(height, width, int(extra))
  return support


def _in_dot(n: int, period: int, dot: int) -> np.ndarray:
  """bool (n,): the positions along one axis that fall in their cell's centred dot."""
  start = (period - dot + 1) // 2
  offset = np.arange(n) % period
  return (offset >= start) & (offset < start + dot)


def peak_support(images: np.ndarray, period: int, polarity: str = "bright",
                 window: int = 0) -> np.ndarray:
  """bool (N, H, W): in every period×period cell of each image, its local-contrast peak.

  The pixel that stands out most above the mean of its 8 neighbours (below it
  for dark dots; channels averaged), one per cell, ties to the first: the
  same count as the centred lattice, but on the image's own fine structure,
  where a dot sharpens what is there and costs the least SSIM. `window` > 0
  seeks it only in the window×window block around the cell's centre (1: the
  centred lattice itself), so that the dots stay near a regular grid.
  """
  score = texture_class.contrast_map(np.asarray(images).mean(-1))
  score = score if polarity == "bright" else -score
  n, h, w = score.shape
  if 0 < window < period:  # −inf outside the centred window of every cell
    score = np.where(_in_dot(h, period, window)[:, None] & _in_dot(w, period, window)[None],
                     score, -np.inf)
  ch, cw = -(-h // period), -(-w // period)
  padded = np.full((n, ch * period, cw * period), -np.inf)
  padded[:, :h, :w] = score
  cells = padded.reshape(n, ch, period, cw, period).transpose(0, 1, 3, 2, 4)
  cells = cells.reshape(n, ch, cw, period * period)
  onehot = ((np.arange(period * period) == cells.argmax(-1)[..., None])
            & np.isfinite(cells.max(-1))[..., None])  # a cell with no candidate gets none
  mask = onehot.reshape(n, ch, cw, period, period).transpose(0, 1, 3, 2, 4)
  return mask.reshape(n, ch * period, cw * period)[:, :h, :w]


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


def class_tiles(key: jax.Array, pattern: str, counts: np.ndarray, tile: int,
                channels: int, bare: int | None = None, polarity: str = "bright") -> np.ndarray:
  """(K, tile, tile, C) in {-1, 0, 1}: each class's tile, no two equal up to a shift.

  `bare`: the class a one-sided pattern leaves untouched (None: the largest).
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
  sign = 1.0 if tiles[0].sum() >= 0 else -1.0
  out[patterned] = np.stack(tiles) * (sign if polarity == "bright" else -sign)
  return out


def textures(tiles: np.ndarray, support: np.ndarray, period: int) -> np.ndarray:
  """(K, H, W, C): each class's tile repeated cell by cell, 0 off the (H, W) support."""
  tile = tiles.shape[1]
  rows = (np.arange(support.shape[0]) // period) % tile
  cols = (np.arange(support.shape[1]) // period) % tile
  return np.where(support[None, :, :, None], tiles[:, rows][:, :, cols], 0.0)


def _under_ssim_floor(lattice, images: np.ndarray, signs: np.ndarray,
                      epsilon: float) -> tuple[np.ndarray, np.ndarray]:
  """(amplitude (N, H, W, 1) or (N, 1, 1, 1), signs) after `noise.lattice.min_ssim`.

  See ssim_floor.py: 'amplitude' gives one amplitude per image, 'drop' keeps ε
  and zeroes the dropped dots' signs, 'contrast' one amplitude per dot.
  """
  min_ssim = float(lattice.get("min_ssim", 0.0))
  full = np.full((len(images), 1, 1, 1), epsilon)
  mode = lattice.get("ssim_floor", "amplitude")
  if not min_ssim:
    return full, signs
  if mode == "amplitude":
    return ssim_floor.amplitudes(images, signs, epsilon, min_ssim)[:, None, None, None], signs
  if mode == "contrast":
    levels = ssim_floor.contrast_levels(images, signs, epsilon, min_ssim)
    top = levels == protected_lib.linf_bound(epsilon)  # a dot at full strength keeps ε itself
    return np.where(top, epsilon, levels / 255.0)[..., None], signs
  keep = ssim_floor.kept_dots(images, signs, epsilon, min_ssim)
  return full, signs * keep[..., None]


def _signs(lattice, tiles: np.ndarray, support: np.ndarray, images: np.ndarray,
           classes: np.ndarray, ratio: float) -> np.ndarray:
  """(N, H, W, C): each image's class texture on the centred lattice, or on its peaks."""
  if lattice.get("placement", "centre") == "centre":
    _check_fits(support, ratio, lattice.period)
    return textures(tiles, support, lattice.period)[classes]
  peaks = peak_support(images, lattice.period, lattice.get("polarity", "bright"),
                       int(lattice.get("peak_window", 0)))
  _check_fits(peaks[0], ratio, lattice.period)  # one per cell: the same count on every image
  everywhere = textures(tiles, np.ones_like(support), lattice.period)[classes]
  return everywhere * peaks[..., None]


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
  bare = lattice.get("bare", "largest")
  contrast = (texture_class.class_contrast(images, classes, num_classes)
              if bare == "busiest" else None)
  bare_index = texture_class.bare_class(counts, bare, contrast)
  tiles = class_tiles(jax.random.PRNGKey(config.seed), lattice.pattern, counts,
                      lattice.tile, c, bare_index, lattice.get("polarity", "bright"))
  support = lattice_support(h, w, lattice.period, int(lattice.get("dot", 1)),
                            int(lattice.get("skew", 0)), tuple(lattice.get("also_periods", ())))
  signs = _signs(lattice, tiles, support, images, classes, noise.mask_ratio)
  x = images.astype(np.float64)
  amplitude, signs = _under_ssim_floor(lattice, images, signs, float(noise.epsilon))
  delta = (np.clip(x + signs * amplitude, 0.0, 1.0) - x).astype(np.float32)
  masks = (np.abs(signs) * amplitude).max(-1) > 0
  textured = np.abs(tiles).max((1, 2, 3)) > 0
  patterned = textured[classes]  # the images of a class that has a texture
  at_epsilon = (np.broadcast_to(amplitude, signs.shape)[..., 0] == float(noise.epsilon)) | ~masks
  full = patterned & at_epsilon.all((1, 2)) & (masks.sum((1, 2)) == support.sum())
  details = {"lattice": {
      "pattern": lattice.pattern, "bare": bare,
      "polarity": lattice.get("polarity", "bright"),
      "placement": lattice.get("placement", "centre"),
      "peak_window": int(lattice.get("peak_window", 0)),
      # each class's mean local contrast, when it chose the bare class
      "class_contrast": None if contrast is None else [
          None if np.isnan(v) else round(float(v), 6) for v in contrast],
      "period": int(lattice.period), "dot": int(lattice.get("dot", 1)),
      "tile": int(lattice.tile), "skew": int(lattice.get("skew", 0)),
      "also_periods": [int(p) for p in lattice.get("also_periods", ())],
      "support_pixels": int(support.sum()),
      "classes_without_noise": np.flatnonzero(~textured).tolist(),
      "min_ssim": float(lattice.get("min_ssim", 0.0)),
      "ssim_floor": lattice.get("ssim_floor", "amplitude"),
      # images of a textured class that the SSIM floor weakened, or emptied
      "images_lowered": int((patterned & ~full).sum()),
      "images_left_clean": int((patterned & ~masks.any((1, 2))).sum())}}
  return delta, masks, details
