"""Random-sign noise on a sparse support: the control that isolates SALM's optimization.

Why it is here: a victim may fail on SALM's data because the noise was
*optimized* (error-minimizing), or merely because some pixels moved by ±ε.
This control keeps everything but the optimization: the same budget ε, the
same number of pixels, and, with `noise.random.support_from`, exactly the
same pixels as a given SALM run, with signs drawn at random instead of by
PGD. If it protects as well as SALM, the optimization is not what protects.

- Support: `support_from` names a SALM run's protected folder; the support is
  every pixel whose *written* int8 noise (`noise.npz`) is nonzero in any
  channel, i.e. the real support of that run's file, not its masks. Empty: a
  random support of ceil(mask_ratio·H·W) pixels per image (one per class in
  class mode), like SALM's masks in size.
- Signs: ±1 per pixel and channel from `PRNGKey(config.seed)`; one pattern per
  image (`noise.mode='sample'`) or per class (`'class'`: every image of a class
  gets the same signs, and with a random support the same support).
- Magnitude: every support pixel moves by exactly ε, or with
  `noise.random.magnitude='source'` by what `support_from`'s written noise
  moved it (its largest channel): a method whose amplitude differs per image
  (the lattice under its SSIM floor lowers some images' dots) gets a control
  with the same amplitudes, pixel by pixel, and only the signs differ. A sign
  that would push a pixel out of [0, 1] (black background, saturated
  highlights) is flipped, so the written support is the support asked for; a
  class pattern therefore differs between images only where an image's own
  pixel forces the sign.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from salm_jax import tasks
from salm_jax.data import protected as protected_lib
from salm_jax.noise.salm import masks as masks_lib

MAGNITUDES = ("epsilon", "source")


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise.random` block."""
  return ml_collections.ConfigDict(dict(
      support_from="",   # a SALM run's protected/ folder: reuse its support ("" = random)
      magnitude="epsilon",  # or 'source': support_from's written amplitude per pixel
  ))


def read_support(protected_dir: str, splits, images: np.ndarray) -> np.ndarray:
  """bool (N, H, W): pixels whose written noise is nonzero in any channel, splits concatenated."""
  return read_levels(protected_dir, splits, images) > 0


def read_levels(protected_dir: str, splits, images: np.ndarray) -> np.ndarray:
  """int16 (N, H, W): each pixel's written |noise| in uint8 levels (largest channel).

  Checks the run's files against its manifest (MD5), that it perturbed every
  split in `splits`, and that its clean images (protected − noise) are
  exactly `images`, so a support can never be laid over another dataset.
  """
  protected_dir = os.path.expanduser(protected_dir)
  dataset, _ = protected_lib.read_protected(protected_dir)
  noise = protected_lib.read_noise(protected_dir)
  support, clean = [], []
  for s in splits:
    if s not in noise:
      raise ValueError(f"noise.random.support_from={protected_dir}: its noise.npz holds splits "
                       f"{sorted(noise)}, not {s!r} (noise.splits = {list(splits)}).")
    diff = noise[s]["noise"].astype(np.int16)
    prot = dataset.splits[s].images.astype(np.int16)
    if diff.shape != prot.shape:
      raise ValueError(f"{protected_dir}: noise of {s} has shape {diff.shape}, images "
                       f"{prot.shape}.")
    diff, prot = (a[..., None] if a.ndim == 3 else a for a in (diff, prot))
    support.append(np.abs(diff).max(-1))
    clean.append(prot - diff)
  support, clean = np.concatenate(support), np.concatenate(clean)
  if clean.shape != images.shape:
    raise ValueError(f"noise.random.support_from={protected_dir}: its {'+'.join(splits)} "
                     f"images are {clean.shape} (N, H, W, C), the dataset "
                     f"being protected {images.shape}; it was made from another dataset.")
  if not np.array_equal(clean, np.rint(images.astype(np.float64) * 255.0)):
    raise ValueError(f"noise.random.support_from={protected_dir}: its clean images (protected − "
                     "noise) differ from the images being protected; it was made from another "
                     "dataset or dataset config.")
  return support


def random_support(key: jax.Array, num: int, height: int, width: int,
                   mask_ratio: float) -> np.ndarray:
  """bool (num, H, W) with exactly ceil(mask_ratio·H·W) uniformly random pixels each."""
  k = masks_lib.num_kept(mask_ratio, height * width)
  scores = jax.random.uniform(key, (num, height * width))
  _, idx = jax.lax.top_k(scores, k)
  support = jnp.zeros((num, height * width), bool).at[jnp.arange(num)[:, None], idx].set(True)
  return np.asarray(support).reshape(num, height, width)


def feasible_noise(images: np.ndarray, signs: np.ndarray, support: np.ndarray,
                   epsilon: float | np.ndarray) -> np.ndarray:
  """δ = ±ε on the support (signs flipped where they would leave [0, 1]), 0 elsewhere.

  ε is one number, or an array broadcast against the images (per pixel).

  Where neither direction fits a full ε (only possible for ε > 0.5), δ is
  clipped so that x + δ stays in [0, 1].
  """
  x = images.astype(np.float64)
  s = signs.astype(np.float64)
  s = np.where(x + s * epsilon > 1.0, -1.0, np.where(x + s * epsilon < 0.0, 1.0, s))
  delta = np.clip(x + s * epsilon, 0.0, 1.0) - x
  return np.where(support[..., None], delta, 0.0).astype(np.float32)


def check_settings(noise) -> None:
  """The config-only checks, run before a stage writes anything."""
  if noise.mode not in tasks.NOISE_MODES:
    raise ValueError(f"noise.mode must be one of {tasks.NOISE_MODES}, got {noise.mode!r}.")
  if protected_lib.linf_bound(noise.epsilon) < 1:
    raise ValueError(f"noise.epsilon = {noise.epsilon} rounds to 0 uint8 levels: the random "
                     "control would change nothing. Use ε ≥ 0.5/255.")
  masks_lib.check_ratio(noise.mask_ratio)
  block = noise.get("random", default_config())
  magnitude = block.get("magnitude", "epsilon")
  if magnitude not in MAGNITUDES:
    raise ValueError(f"noise.random.magnitude must be one of {MAGNITUDES}, got {magnitude!r}.")
  if magnitude == "source" and not block.support_from:
    raise ValueError("noise.random.magnitude='source' takes the amplitudes of "
                     "noise.random.support_from's written noise; set support_from.")


def check_config(noise, task: str) -> None:
  check_settings(noise)
  tasks.noise_mode(noise.mode, task)  # class-wise needs one class per image


def make_noise(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
               task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
  """Random-sign noise for `images` (float32 NHWC in [0, 1]): (delta, masks, details)."""
  noise = config.noise
  check_config(noise, task)
  block = noise.get("random", default_config())
  support_from, magnitude = block.support_from, block.get("magnitude", "epsilon")
  n, h, w, c = images.shape
  key = jax.random.PRNGKey(config.seed)
  mode = tasks.noise_mode(noise.mode, task)
  groups = np.asarray(labels)[:, 0].astype(np.int64) if mode == "class" else None
  num = num_classes if groups is not None else n
  expand = (lambda a: a[groups]) if groups is not None else (lambda a: a)
  if support_from:
    splits = [noise.splits] if isinstance(noise.splits, str) else list(noise.splits)
    levels = read_levels(support_from, splits, images)
    support = levels > 0
  else:
    support = expand(random_support(jax.random.fold_in(key, 0), num, h, w, noise.mask_ratio))
  signs = np.asarray(jax.random.rademacher(jax.random.fold_in(key, 1), (num, h, w, c),
                                           dtype=jnp.float32))
  epsilon = (levels[..., None] / 255.0 if magnitude == "source" else float(noise.epsilon))
  delta = feasible_noise(images, expand(signs), support, epsilon)
  details = {"random": {"support_from": os.path.abspath(support_from) if support_from else None,
                        "mode": mode, "magnitude": magnitude}}
  return delta, support, details
