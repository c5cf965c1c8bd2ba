"""Per-image amplitude under an SSIM floor, for class-wise sparse patterns.

Why it is here: one-pixel dots cost every image the same PSNR, but not the
same SSIM. On a flat, dark stretch of an ultrasound or X-ray a dot is all the
local structure there is, and SSIM falls far more than PSNR says: the one-sided
texture at 35 dB left a quarter of BreastMNIST's changed images below SSIM
0.95 (lowest 0.88) while their mean over *all* images read 0.988
(`benchmarks/distortion_per_image.py`). Issue 9's floor is about every image.

Two ways to meet the floor (`noise.lattice.ssim_floor`), both per image,
both keeping the pattern's positions and signs — what a victim learns:

  'amplitude'  the largest amplitude, in whole uint8 levels up to ε, whose
               written image keeps SSIM ≥ `min_ssim`; every dot stays.
  'drop'       every kept dot stays at ε; the dots on the flattest
               neighbourhoods (lowest local standard deviation of the clean
               image) go first, in steps of a tenth of the image's dots,
               until the image keeps the floor.

PSNR can only rise. An image that cannot keep the floor with any dot is
left untouched and counted. SSIM is measured as the reports measure it
(`evaluation.utility`), on the uint8 values the file will hold.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from salm_jax.data import dataset
from salm_jax.data import protected as protected_lib
from salm_jax.evaluation import utility


MODES = ("amplitude", "drop")
_DROP_STEPS = 10
_WINDOW = 5  # the neighbourhood whose flatness ranks the dots ('drop')


def check(min_ssim, mode: str, field: str) -> float:
  """`min_ssim` as a float in [0, 1) (0 turns the floor off); `mode` one of MODES."""
  if isinstance(min_ssim, bool) or not isinstance(min_ssim, (int, float)) or not (
      0.0 <= min_ssim < 1.0):
    raise ValueError(f"{field}.min_ssim must be a number in [0, 1) (0 turns the floor off), "
                     f"got {min_ssim!r}.")
  if mode not in MODES:
    raise ValueError(f"{field}.ssim_floor must be one of {MODES}, got {mode!r}.")
  return float(min_ssim)


def _ssim(clean: np.ndarray, signs: np.ndarray, level, keep=None) -> np.ndarray:
  """Per-image SSIM of the written uint8 image: clean + signs·level on the kept dots."""
  steps = signs if keep is None else signs * keep[..., None]
  written = np.clip(clean.astype(np.int16) + steps.astype(np.int16) * level, 0, 255)
  return utility.per_image_stats(clean, written.astype(np.uint8))["ssim"]


def _first_passing(clean: np.ndarray, signs: np.ndarray, n_trials: int,
                   trial: Callable[[int, np.ndarray], tuple], min_ssim: float) -> np.ndarray:
  """int (N,): each image's first trial whose written image keeps the floor (n_trials: none).

  `trial(i, idx)` gives the i-th (uint8 level, kept dots or None) for the
  images `idx`; trials go from the strongest to the weakest, and only the
  images no earlier trial settled are measured again.
  """
  choice = np.full(len(clean), n_trials)
  for i in range(n_trials):
    todo = np.flatnonzero(choice == n_trials)
    if not len(todo):
      break
    level, keep = trial(i, todo)
    choice[todo[_ssim(clean[todo], signs[todo], level, keep) >= min_ssim]] = i
  return choice


def amplitudes(images: np.ndarray, signs: np.ndarray, epsilon: float,
               min_ssim: float) -> np.ndarray:
  """(N,) amplitude per image in [0, ε]: ε where the floor allows it, else fewer levels.

  images: float (N, H, W, C) in [0, 1] (uint8 / 255); signs: (N, H, W, C) in
  {-1, 0, 1}, the pattern. The result is ε itself for an image that meets the
  floor at full strength, so turning the floor on changes nothing there.
  """
  levels = list(range(protected_lib.linf_bound(epsilon), 0, -1))
  choice = _first_passing(dataset.as_uint8_like(images, images), signs, len(levels),
                          lambda i, idx: (levels[i], None), min_ssim)
  return np.array([epsilon] + [level / 255.0 for level in levels[1:]] + [0.0])[choice]


def kept_dots(images: np.ndarray, signs: np.ndarray, epsilon: float,
              min_ssim: float) -> np.ndarray:
  """bool (N, H, W): the dots each image keeps at full ε under the floor ('drop').

  Dots are ranked within their image by the flatness of the clean image
  around them; the flattest tenth goes first, then the next, until the
  written image keeps SSIM ≥ `min_ssim` (all of them, if nothing else does).
  """
  clean = dataset.as_uint8_like(images, images)
  dots = np.abs(signs).max(-1) > 0
  rank = _flatness_rank(clean, dots)
  count = dots.reshape(len(dots), -1).sum(1)
  dropped = lambda step, idx: np.ceil(count[idx] * step / _DROP_STEPS)[:, None, None]
  level = protected_lib.linf_bound(epsilon)
  choice = _first_passing(clean, signs, _DROP_STEPS + 1,
                          lambda i, idx: (level, dots[idx] & (rank[idx] >= dropped(i, idx))),
                          min_ssim)
  everything = np.arange(len(dots))  # no passing step: a drop past the last dot keeps none
  return dots & (rank >= dropped(choice, everything))


def _flatness_rank(clean: np.ndarray, dots: np.ndarray) -> np.ndarray:
  """int (N, H, W): each dot's rank within its image, flattest 0 (non-dots rank last)."""
  x = clean.astype(np.float64).mean(-1)
  pad = _WINDOW // 2
  windows = np.lib.stride_tricks.sliding_window_view(
      np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="reflect"), (_WINDOW, _WINDOW), (1, 2))
  flat = np.where(dots, windows.std((-1, -2)), np.inf).reshape(len(x), -1)
  order = np.argsort(flat, axis=1, kind="stable")
  rank = np.empty_like(order)
  np.put_along_axis(rank, order, np.arange(order.shape[1])[None], axis=1)
  return rank.reshape(dots.shape)
