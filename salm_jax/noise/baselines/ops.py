"""One-Pixel Shortcut (OPS): a model-free, class-wise baseline for SALM.

Wu, Chen, Xie & Huang, "One-Pixel Shortcut: on the Learning Preference of
Deep Neural Networks", ICLR 2023 (arXiv 2205.12141). Why it is here: SALM
claims that *sparse* noise can make data unlearnable; OPS is the sparsest
published unlearnable noise (one pixel per image, no model at all), so SALM
must beat it, or at least differ from it, for its surrogate and its saliency
to be worth their cost.

The paper's rule (abstract): "perturb in-class images at the same position to
the same target value that could mostly and stably deviate from all the
original images". Its official code (github.com/cychomatica/One-Pixel-Shotcut,
`perturb.py::pixel_search`) scores, for class k, every position σ and target
colour ξ (a corner of the colour cube: {0, 1} for gray, {0, 1}³ for RGB) by

    d = |ξ − x_σ| over the class's images and channels,
    score(σ, ξ) = mean(d) / std(d)          (population std, as np.std)

a large mean change ("mostly") that is the same for every image ("stably"),
and sets x_σ ← ξ in every image of the class. We implement that score, with
these choices where the code is silent or does otherwise:

- std = 0 (a pixel constant over the class) scores +inf when the mean is
  positive (a perfectly stable change) and 0 when it is 0 (no change); the
  official code divides by zero. Ties go to the larger mean, then to the
  lower (row-major position, colour) index.
- (position, colour) pairs taken by an earlier class are not offered to later
  classes, as in the official code, so no two classes share a shortcut.
- `pixels` = k > 1 takes the k best *distinct* positions of the class (the
  official `sparsity` takes the k best pairs, which may repeat a position).
- OPS is unbounded in L∞ (the pixel is set to ξ): `epsilon` = 1.0 is the
  paper's method. A smaller value clips δ to [−ε, ε]; that variant is ours.

The moments are computed once per class in float64, chunked over images, so
the search costs two passes over the data whatever the number of colours.
"""
from __future__ import annotations

import itertools

import ml_collections
import numpy as np

from salm_jax import tasks

_ZERO_VAR = 1e-12    # float64 rounding of a constant pixel's variance; real uint8 data
                     # varies by ≥ (1/255)²/N, above this for any N < 10⁷
_CHUNK = 4096        # images per pass when accumulating moments


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.ops` block."""
  return ml_collections.ConfigDict(dict(
      pixels=1,       # positions per class (the paper: 1)
      epsilon=1.0,    # L∞ bound of the change; 1.0 = unbounded, the paper's OPS
  ))


def colours(channels: int) -> np.ndarray:
  """(2^C, C) float64: the corners of the colour cube, ξ in the paper ({0, 1} for gray)."""
  return np.asarray(list(itertools.product((0.0, 1.0), repeat=channels)), np.float64)


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per (position, channel) mean and population variance over images, float64, chunked."""
  n = len(x)
  mean = sum(x[i:i + _CHUNK].sum(0, dtype=np.float64) for i in range(0, n, _CHUNK)) / n
  var = sum(((x[i:i + _CHUNK] - mean) ** 2).sum(0) for i in range(0, n, _CHUNK)) / n
  return mean, var


def class_scores(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """OPS's score and mean change, (H·W, 2^C) each, for one class's images x (n, H, W, C).

  d = |ξ − x| is x where ξ_c = 0 and 1 − x where ξ_c = 1, so per channel its
  variance is x's; pooled over channels, the variance adds the spread of the
  channel means: Var(d) = mean_c Var(x_c) + mean_c (E d_c − E d)².
  """
  n, h, w, c = x.shape
  mean, var = _moments(x.reshape(n, h * w, c))                 # (HW, C) each
  xi = colours(c)                                               # (V, C)
  mean_d = np.where(xi[None] > 0, 1.0 - mean[:, None], mean[:, None])  # (HW, V, C)
  pooled_mean = mean_d.mean(-1)
  pooled_var = var.mean(-1)[:, None] + ((mean_d - pooled_mean[..., None]) ** 2).mean(-1)
  stable = pooled_var <= _ZERO_VAR
  with np.errstate(divide="ignore", invalid="ignore"):
    score = np.where(stable, np.where(pooled_mean > 0, np.inf, 0.0),
                     pooled_mean / np.sqrt(pooled_var))
  return score, pooled_mean


def pick(score: np.ndarray, mean: np.ndarray, k: int, taken: set) -> list[tuple[int, int]]:
  """The k best (position, colour) pairs with distinct positions, skipping `taken` pairs.

  Order: score, then mean change, both descending, then the lower flat index.
  """
  num_pos, num_col = score.shape
  flat = np.arange(score.size)
  order = np.lexsort((flat, -mean.ravel(), -score.ravel()))
  chosen, positions = [], set()
  for f in order:
    p, v = divmod(int(f), num_col)
    if p in positions or (p, v) in taken:
      continue
    chosen.append((p, v))
    positions.add(p)
    if len(chosen) == k:
      return chosen
  raise ValueError(f"OPS: fewer than {k} free (position, colour) pairs left for a class; "
                   "lower noise.ops.pixels.")


def search(images: np.ndarray, groups: np.ndarray, num_classes: int,
           pixels: int) -> tuple[np.ndarray, np.ndarray]:
  """Per class, the `pixels` positions (flat, row-major) and target colours OPS picks.

  Classes are searched in order 0, 1, ...; a class without images gets
  position −1 (nothing to perturb).

  Returns:
    positions int64 (K, pixels) and targets float32 (K, pixels, C).
  """
  c = images.shape[-1]
  xi = colours(c)
  positions = np.full((num_classes, pixels), -1, np.int64)
  targets = np.zeros((num_classes, pixels, c), np.float32)
  taken: set = set()
  for k in range(num_classes):
    members = images[groups == k]
    if not len(members):
      continue
    score, mean = class_scores(members)
    chosen = pick(score, mean, pixels, taken)
    taken.update(chosen)
    positions[k] = [p for p, _ in chosen]
    targets[k] = xi[[v for _, v in chosen]]
  return positions, targets


def apply(images: np.ndarray, groups: np.ndarray, positions: np.ndarray, targets: np.ndarray,
          epsilon: float) -> tuple[np.ndarray, np.ndarray]:
  """δ = clip(ξ − x, ±ε) at each image's class positions, 0 elsewhere; and those positions.

  Returns:
    delta float32 (N, H, W, C) with x + δ in [0, 1]; masks bool (N, H, W).
  """
  n, h, w, c = images.shape
  pos = positions[groups]                                           # (N, k)
  valid = pos >= 0
  rows = np.broadcast_to(np.arange(n)[:, None], pos.shape)[valid]
  cols = pos[valid]
  x = images.reshape(n, h * w, c)
  change = np.clip(targets[groups][valid] - x[rows, cols], -epsilon, epsilon)
  delta = np.zeros_like(x, dtype=np.float32)
  delta[rows, cols] = change
  masks = np.zeros((n, h * w), bool)
  masks[rows, cols] = True
  return delta.reshape(n, h, w, c), masks.reshape(n, h, w)


def check_config(ops_cfg, task: str, image_shape: tuple) -> tuple[int, float]:
  """(pixels, epsilon) from `config.noise.ops`, or a clear error."""
  if tasks.is_multilabel(task):
    raise ValueError("OPS is class-wise: it needs one class per image, and the multi-label "
                     "task has none.")
  pixels, epsilon = ops_cfg.pixels, ops_cfg.epsilon
  h, w = image_shape[1:3]
  if isinstance(pixels, bool) or not isinstance(pixels, int) or not 1 <= pixels <= h * w:
    raise ValueError(f"noise.ops.pixels must be an integer in [1, {h * w}], got {pixels!r}.")
  if not 0.0 < float(epsilon) <= 1.0:
    raise ValueError(f"noise.ops.epsilon must be in (0, 1] (1.0: unbounded, the paper's OPS); "
                     f"got {epsilon!r}.")
  return pixels, float(epsilon)


def make_noise(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
               task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
  """OPS noise for `images` (float32 NHWC in [0, 1]): (delta, masks, details for the manifest)."""
  ops_cfg = config.noise.get("ops", default_config())
  pixels, epsilon = check_config(ops_cfg, task, images.shape)
  groups = np.asarray(labels)[:, 0].astype(np.int64)
  positions, targets = search(images, groups, num_classes, pixels)
  delta, masks = apply(images, groups, positions, targets, epsilon)
  w = images.shape[2]
  details = {"ops": [[{"row": int(p // w), "col": int(p % w), "target": t.tolist()}
                      for p, t in zip(positions[k], targets[k]) if p >= 0]
                     for k in range(num_classes)]}
  return delta, masks, details
