"""A synthetic "phantom" MedMNIST dataset: runs offline, in seconds, bit for bit.

Why it exists: tests, CI and the README's main job must run without any
download, yet protection is only worth measuring on data that a model can
actually learn, and SALM's premise is that medical images are sparse. So each
phantom image is mostly black background with a dim, noisy "organ" (an
ellipse), a few small bright distractor dots (anatomy that carries no class),
and the class lives in one small lesion whose *shape* decides the label:

- binary: round lesion (0, benign) vs. spiculated star (1, malignant);
- multi-class: K lesion shapes (disk, star, ring, bar, cross, square), K <= 6;
- multi-label: L independent findings, each a different shape, present or not.

Gray (1 channel, stored (N, H, W) like MedMNIST's gray sets) or RGB (3
channels, each image tinted at random so colour never carries the class).
Every split has its own random stream derived from the seed, so the test set
does not change when n_train does.
"""
from __future__ import annotations

import numpy as np

from salm_jax import tasks
from salm_jax.data.dataset import SPLITS, Dataset, Split

SHAPES = ("disk", "star", "ring", "bar", "cross", "square")
_TASK_ALIASES = {"binary": tasks.BINARY, "multi-class": tasks.MULTI_CLASS,
                 "multiclass": tasks.MULTI_CLASS, "multi-label": tasks.MULTI_LABEL,
                 "multilabel": tasks.MULTI_LABEL, tasks.MULTI_LABEL: tasks.MULTI_LABEL,
                 tasks.BINARY: tasks.BINARY}


def resolve_task(task: str) -> str:
  """'binary' / 'multi-class' / 'multi-label' (or MedMNIST's names) -> MedMNIST task."""
  if task not in _TASK_ALIASES:
    raise ValueError(f"Unknown phantom task {task!r}; use 'binary', 'multi-class' or "
                     "'multi-label'.")
  return _TASK_ALIASES[task]


def make_phantom(*, task: str = "binary", num_classes: int = 2, size: int = 28,
                 channels: int = 1, n_train: int = 512, n_val: int = 128,
                 n_test: int = 256, seed: int = 0, lesion_contrast: float = 0.0) -> Dataset:
  """Builds the phantom dataset; the same arguments give bit-identical arrays.

  Args:
    task: 'binary', 'multi-class' or 'multi-label'.
    num_classes: classes (multi-class, 2..6) or findings (multi-label, 1..6);
      forced to 2 for binary.
    size: image side in pixels (>= 16); lesion and organ sizes scale with it.
    channels: 1 (gray) or 3 (RGB).
    n_train, n_val, n_test: split sizes.
    seed: the only source of randomness.
    lesion_contrast: 0 (default) draws bright lesions (170..255 on a 25..55
      organ), which any model learns in a few steps; > 0 draws each lesion
      this many uint8 levels (±30%) above its organ, like the subtle lesions
      of real scans.
  """
  task = resolve_task(task)
  num_classes = 2 if task == tasks.BINARY else int(num_classes)
  _check_args(task, num_classes, size, channels, (n_train, n_val, n_test))
  shapes = ("disk", "star") if task == tasks.BINARY else SHAPES[:num_classes]
  splits = {}
  for i, (name, n) in enumerate(zip(SPLITS, (n_train, n_val, n_test))):
    rng = np.random.default_rng([seed, i])
    labels = _labels(rng, task, num_classes, n)
    images = np.stack([_image(rng, lab, task, shapes, size, channels, lesion_contrast)
                       for lab in labels])
    splits[name] = Split(images=images, labels=labels)
  label_names = {str(k): f"{'finding' if task == tasks.MULTI_LABEL else 'lesion'}: {s}"
                 for k, s in enumerate(shapes)}
  source = (f"phantom(task={task!r}, num_classes={num_classes}, size={size}, "
            f"channels={channels}, seed={seed}"
            + (f", lesion_contrast={lesion_contrast:g})" if lesion_contrast else ")"))
  return Dataset(name="phantom", task=task, num_classes=num_classes,
                 label_names=label_names, splits=splits, source=source, source_md5="")


def _check_args(task, num_classes, size, channels, counts) -> None:
  if task == tasks.MULTI_CLASS and not 2 <= num_classes <= len(SHAPES):
    raise ValueError(f"phantom multi-class num_classes must be in 2..{len(SHAPES)}, "
                     f"got {num_classes}.")
  if task == tasks.MULTI_LABEL and not 1 <= num_classes <= len(SHAPES):
    raise ValueError(f"phantom multi-label num_classes must be in 1..{len(SHAPES)}, "
                     f"got {num_classes}.")
  if size < 16:
    raise ValueError(f"phantom size must be >= 16 px, got {size}.")
  if channels not in (1, 3):
    raise ValueError(f"phantom channels must be 1 or 3, got {channels}.")
  if min(counts) < 1:
    raise ValueError(f"phantom split sizes must be >= 1, got {counts}.")


def _labels(rng: np.random.Generator, task: str, k: int, n: int) -> np.ndarray:
  """Balanced classes in random order, or independent 50% findings; uint8 (N, L)."""
  if task == tasks.MULTI_LABEL:
    return (rng.random((n, k)) < 0.5).astype(np.uint8)
  return rng.permutation(np.arange(n) % k).astype(np.uint8)[:, None]


def _image(rng, label, task, shapes, size, channels, contrast=0.0) -> np.ndarray:
  """One uint8 image: organ, distractor dots, then the lesion(s) of its label."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  scale = size / 28.0
  cy, cx = rng.uniform(0.4, 0.6, 2) * size
  ry, rx = rng.uniform(0.3, 0.42, 2) * size
  organ = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
  level = rng.uniform(25, 55)
  img = np.where(organ, level + rng.normal(0, 8, (size, size)), 0.0)
  for _ in range(rng.integers(2, 5)):
    dy, dx = _point_in_organ(rng, cy, cx, ry, rx)
    dot = (yy - dy) ** 2 + (xx - dx) ** 2 <= (rng.uniform(0.6, 1.3) * scale) ** 2
    img = np.where(dot, rng.uniform(90, 230), img)
  present = (np.flatnonzero(label) if task == tasks.MULTI_LABEL else [int(label[0])])
  for k in present:
    ly, lx = _point_in_organ(rng, cy, cx, ry, rx)
    radius = rng.uniform(3.5, 4.5) * scale
    mask = _shape_mask(shapes[k], yy - ly, xx - lx, radius, scale)
    if contrast:
      img = np.where(mask, img + contrast * rng.uniform(0.7, 1.3), img)
    else:
      img = np.where(mask, rng.uniform(170, 255), img)
  img = np.clip(np.rint(img), 0, 255)
  if channels == 3:
    tint = rng.uniform(0.55, 1.0, 3)
    img = img[..., None] * tint
  return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _point_in_organ(rng, cy, cx, ry, rx) -> tuple[float, float]:
  """A uniform point in the inner 65% of the organ ellipse."""
  angle, rad = rng.uniform(0, 2 * np.pi), 0.65 * np.sqrt(rng.uniform())
  return cy + rad * ry * np.sin(angle), cx + rad * rx * np.cos(angle)


def _shape_mask(shape: str, dy, dx, r: float, scale: float) -> np.ndarray:
  d = np.sqrt(dy ** 2 + dx ** 2)
  thin = 0.75 * scale
  if shape == "disk":
    return d <= r
  if shape == "star":
    diag = np.minimum(np.abs(dy - dx), np.abs(dy + dx)) / np.sqrt(2)
    axes = np.minimum(np.abs(dy), np.abs(dx))
    return (np.minimum(diag, axes) <= thin) & (d <= r + 0.5 * scale)
  if shape == "ring":
    return (d <= r) & (d >= r - 1.3 * scale)
  if shape == "square":
    return np.maximum(np.abs(dy), np.abs(dx)) <= 0.8 * r
  if shape == "cross":
    return (np.minimum(np.abs(dy), np.abs(dx)) <= thin) & (np.maximum(np.abs(dy), np.abs(dx)) <= r)
  if shape == "bar":
    return (np.abs(dy) <= thin) & (np.abs(dx) <= r + scale)
  raise ValueError(f"Unknown phantom lesion shape {shape!r}.")
