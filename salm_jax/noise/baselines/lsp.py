"""Linearly separable perturbations (LSP): a model-free, class-wise baseline for SALM.

Yu, Zhang, Chen, Yin & Liu, "Availability Attacks Create Shortcuts", KDD 2022
(arXiv 2111.00898). Why it is here: the paper shows that unlearnable noise
works because it is linearly separable by class, and that synthetic noise
with that one property, drawn with no model and no data, protects as well;
if it protects medical images as well as SALM, SALM's optimization is not
what protects.

The noise is synthetic data with one Gaussian cluster per class (sklearn's
`make_classification`: centroids on distinct vertices of a hypercube of side
2·class_sep, samples N(0, I)·A_k + centroid_k with A_k uniform in [−1, 1],
every feature informative), in a space of one feature per patch×patch block
and channel; each feature is repeated over its block, the result cropped to
the image, scaled to the L2 norm √D·ε (D = H·W·C values, ε = `epsilon_rms`)
and added to an image of its class, clipped to [0, 1].

Published settings (the reference code, github.com/dayu11/Availability-
Attacks-Create-Shortcuts, `synthetic_perturbations/cifar_train.py`): patch 8
on 32 px (4×4×3 = 48 features), class_sep 10, one cluster per class, ε = 6/255
(`--eps 6`). Ours where it is silent or cannot be followed:

- Our own draw, seeded by `default_rng([seed, 1])`, not sklearn: the same
  centroids and covariances in distribution; no feature shuffle and no sample
  shuffle (both only relabel draws that are identically distributed).
- Exactly as many samples per class as the class has images (the reference
  draws equal class sizes, which an imbalanced dataset would overrun).
- Images not a multiple of `patch` get ⌈H/patch⌉·⌈W/patch⌉·C features, the
  last blocks cropped (the reference's feature count breaks there).
"""
from __future__ import annotations

import hashlib
import math

import ml_collections
import numpy as np

from salm_jax import tasks
from salm_jax.noise import blocks
from salm_jax.noise.baselines import l2_scale

_STREAM = 1                # default_rng([seed, _STREAM])
_CHUNK_VALUES = 1 << 24    # image values expanded at a time


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.lsp` block."""
  return ml_collections.ConfigDict(dict(
      patch=8,                 # side of the block one feature covers (the paper: 8 on 32 px)
      epsilon_rms=6 / 255,     # each δ has L2 norm √(H·W·C)·epsilon_rms (the paper: --eps 6)
      class_sep=10.0,          # half the hypercube's side (make_classification's class_sep)
  ))


def _block(noise: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`noise.lsp` over the defaults (a block without some field takes its default)."""
  return blocks.method_block(noise, "lsp", default_config())


def check_config(noise: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config-only checks; returns the block with defaults filled in."""
  block = _block(noise)
  patch = block.patch
  if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or patch < 1:
    raise ValueError(f"noise.lsp.patch must be an integer ≥ 1, got {patch!r}.")
  for name in ("epsilon_rms", "class_sep"):
    value = block[name]
    if (isinstance(value, bool) or not isinstance(value, (int, float))
        or not math.isfinite(value) or value <= 0):
      raise ValueError(f"noise.lsp.{name} must be a positive number, got {value!r}.")
  if block.epsilon_rms > 1:
    raise ValueError(f"noise.lsp.epsilon_rms must be at most 1 (an RMS in [0, 1] pixel "
                     f"units), got {block.epsilon_rms}.")
  return block


def linf_bound(config: ml_collections.ConfigDict) -> float:
  """1.0: the L2 norm √D·ε may all sit on one value; clipping to [0, 1] bounds the rest."""
  del config
  return 1.0


def grid(height: int, width: int, patch: int) -> tuple[int, int]:
  """Blocks per column and per row: ⌈H/patch⌉, ⌈W/patch⌉."""
  return -(-height // patch), -(-width // patch)


def hypercube_vertices(rng: np.random.Generator, num: int, dim: int) -> np.ndarray:
  """(num, dim) distinct, uniformly drawn vertices of {0, 1}^dim (make_classification's)."""
  if dim < 63 and num > 2 ** dim:
    raise ValueError(f"LSP: {num} classes need distinct centroids, but {dim} features give "
                     f"only {2 ** dim}; lower noise.lsp.patch.")
  if dim <= 20:
    codes = rng.choice(2 ** dim, size=num, replace=False)
    return ((codes[:, None] >> np.arange(dim - 1, -1, -1)) & 1).astype(np.float64)
  while True:
    bits = rng.integers(0, 2, (num, dim)).astype(np.float64)
    if len(np.unique(bits, axis=0)) == num:
      return bits


def clusters(rng: np.random.Generator, counts, dim: int,
             class_sep: float) -> tuple[np.ndarray, list[np.ndarray]]:
  """Centroids (K, dim) at ±class_sep; per class, counts[k] samples N(0, I)·A_k + centroid_k."""
  centroids = hypercube_vertices(rng, len(counts), dim) * (2.0 * class_sep) - class_sep
  features = []
  for k, count in enumerate(counts):
    mixing = 2.0 * rng.uniform(size=(dim, dim)) - 1.0
    features.append(rng.standard_normal((int(count), dim)) @ mixing + centroids[k])
  return centroids, features


def to_images(features: np.ndarray, height: int, width: int, channels: int,
              patch: int) -> np.ndarray:
  """(n, dim) features -> (n, H, W, C): each feature over its patch×patch block, cropped."""
  gh, gw = grid(height, width, patch)
  x = features.reshape(len(features), gh, gw, channels)
  x = np.repeat(np.repeat(x, patch, axis=1), patch, axis=2)
  return x[:, :height, :width]


def make_noise(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
               task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
  """LSP noise for `images` (float32 NHWC in [0, 1]): (delta, masks, details for the manifest)."""
  seed = blocks.class_wise_seed(config, task, "LSP (noise.method='lsp')")
  block = check_config(config.noise)
  n, h, w, c = images.shape
  patch = int(block.patch)
  gh, gw = grid(h, w, patch)
  dim = gh * gw * c
  l2 = math.sqrt(h * w * c) * float(block.epsilon_rms)
  groups = np.asarray(labels)[:, 0].astype(np.int64)
  counts = np.bincount(groups, minlength=num_classes)
  rng = np.random.default_rng([seed, _STREAM])
  centroids, per_class = clusters(rng, counts, dim, float(block.class_sep))
  features = np.empty((n, dim), np.float64)
  for k in range(num_classes):
    features[groups == k] = per_class[k]          # the class's samples in image order
  delta = np.empty(images.shape, np.float32)
  after = np.empty(n, np.float64)
  linf_before = linf = 0.0
  step = max(1, _CHUNK_VALUES // (h * w * c))
  for lo in range(0, n, step):
    hi = min(n, lo + step)
    raw = to_images(features[lo:hi], h, w, c, patch)
    delta[lo:hi], after[lo:hi], top_before, top = l2_scale.scale_and_clip(raw, images[lo:hi], l2)
    linf_before, linf = max(linf_before, top_before), max(linf, top)
  signs = np.packbits(centroids > 0, axis=1)
  details = {"lsp": {
      "patch": patch, "grid": [gh, gw], "features": dim,
      "epsilon_rms": float(block.epsilon_rms), "l2": l2, "class_sep": float(block.class_sep),
      "centroid_seed": seed,
      "centroids_sha256": hashlib.sha256(signs.tobytes()).hexdigest()[:16],
      "linf_before_clip": linf_before, "linf": linf,
      "l2_after_clip_mean": float(after.mean()) if n else 0.0,
      "l2_after_clip_min": float(after.min()) if n else 0.0,
  }}
  return delta, (delta != 0).any(-1), details
