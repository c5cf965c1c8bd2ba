"""Where the distortion budget goes: an L∞ bound, or a PSNR spent on the support.

By default `noise.epsilon` is the user's L∞ bound and every method keeps to
it. Sparse noise raises a second question: at the *same* PSNR, is a larger
per-pixel change on fewer pixels stronger than a small change on many? With
`noise.budget = 'psnr'`, ε is derived from `noise.target_psnr` and the
support's size so that ±ε on a `ratio` fraction of each image's pixels has
exactly that PSNR (on [0, 1] images):

    PSNR = −10·log10(ratio · ε²)   ⇔   ε = 10^(−PSNR/20) / √ratio

Clipping to [0, 1] and uint8 rounding can only lower the change, so the
written file's PSNR is at least the target. The derived ε then becomes the
L∞ bound the file is quantized and checked against, and the manifest states
it. `resolve` is applied once, by `protect`, before anything is generated.
"""
from __future__ import annotations

import math

import ml_collections

BUDGETS = ("linf", "psnr")


def epsilon_for_psnr(target_psnr: float, ratio: float) -> float:
  """The ε of ±ε noise on a `ratio` fraction of pixels whose PSNR is `target_psnr` dB."""
  if not (isinstance(target_psnr, (int, float)) and math.isfinite(target_psnr)
          and target_psnr > 0):
    raise ValueError(f"noise.target_psnr must be a positive number of dB, got {target_psnr!r}.")
  if not 0.0 < ratio <= 1.0:
    raise ValueError(f"mask_ratio must be in (0, 1], got {ratio!r}.")
  return min(1.0, 10.0 ** (-target_psnr / 20.0) / math.sqrt(ratio))


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose `noise.epsilon` is the L∞ bound actually used.

  The PGD step size keeps its ratio to ε (EM's α = ε/10), so a larger budget
  is reached in the same number of steps.
  """
  budget = config.noise.get("budget", "linf")
  if budget not in BUDGETS:
    raise ValueError(f"noise.budget must be one of {BUDGETS}, got {budget!r}.")
  if budget == "linf":
    return config
  out = ml_collections.ConfigDict(config.to_dict())
  epsilon = epsilon_for_psnr(config.noise.target_psnr, float(config.noise.mask_ratio))
  out.noise.step_size = float(config.noise.step_size) * epsilon / float(config.noise.epsilon)
  out.noise.epsilon = epsilon
  return out
