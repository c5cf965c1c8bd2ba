"""Reading and writing MedMNIST-layout npz files, with every check in one place.

A MedMNIST file holds `{train,val,test}_{images,labels}`: uint8 images
(N, H, W) or (N, H, W, 3) and integer labels (N, L). The official files, a
user's own file and a protected file all go through `read_npz`, so a bad file
fails the same way wherever it comes from: a ValueError that names the file
and the problem, before any training starts.

Many re-saved copies (course repositories, Kaggle) store single-label classes
flat, as (N,), with everything else identical. Those are read as (N, 1), and
`write_npz(..., flat_labels=True)` writes them back flat, so a protected copy
has the layout of its input.
"""
from __future__ import annotations

import os
import zipfile
from typing import Mapping

import numpy as np

from salm_jax import atomic
from salm_jax import tasks
from salm_jax.data import npz_stream
from salm_jax.data.dataset import SPLITS, Split

KEYS = tuple(f"{s}_{k}" for s in SPLITS for k in ("images", "labels"))


def read_npz(path: str, *, lazy: bool = False) -> dict[str, Split]:
  """Loads and checks the layout of a MedMNIST npz (not yet the label range).

  `lazy`: the image arrays stay in the file (`npz_stream.NpzRows`), read by rows on demand.
  """
  return read_npz_layout(path, lazy=lazy)[0]


def read_npz_layout(path: str, *, lazy: bool = False) -> tuple[dict[str, Split], bool]:
  """(splits with (N, L) labels, whether the file stores its labels flat as (N,))."""
  path = os.path.expanduser(path)
  arrays = _load_arrays(path, lazy)
  splits = {s: Split(images=arrays[f"{s}_images"], labels=arrays[f"{s}_labels"])
            for s in SPLITS}
  for s, split in splits.items():
    _check_split(path, s, split)
  flat = _flat_label_splits(path, splits)
  if flat:
    splits = {s: Split(images=sp.images, labels=sp.labels.reshape(-1, 1))
              for s, sp in splits.items()}
  _check_same_image_shape(path, splits)
  return splits, flat


def layout(flat_labels: bool) -> dict:
  """`Dataset.layout` of an npz: {} for MedMNIST's (N, L) labels, else notes (N,)."""
  return {"format": "npz", "label_shape": "(N,)"} if flat_labels else {}


def has_flat_labels(dataset_layout: Mapping) -> bool:
  return dict(dataset_layout or {}).get("label_shape") == "(N,)"


def _flat_label_splits(path: str, splits: Mapping[str, Split]) -> bool:
  """True if every split's labels are (N,), False if every split's are (N, L)."""
  ndims = {s: split.labels.ndim for s, split in splits.items()}
  if len(set(ndims.values())) != 1:
    shapes = {s: split.labels.shape for s, split in splits.items()}
    raise ValueError(f"{path}: label shapes mix flat (N,) and (N, L) between splits: "
                     f"{shapes}; use one layout for every split.")
  return ndims["train"] == 1


def _load_arrays(path: str, lazy: bool = False) -> dict[str, np.ndarray]:
  if not os.path.exists(path):
    raise ValueError(f"{path}: file not found.")
  try:
    z = np.load(path, allow_pickle=False)
    if not isinstance(z, np.lib.npyio.NpzFile):
      raise ValueError("not an npz archive (a single .npy array?)")
    with z:
      missing = [k for k in KEYS if k not in z.files]
      if missing:
        raise ValueError(f"missing keys {missing}; a MedMNIST file has {list(KEYS)} "
                         f"(found {sorted(z.files)})")
      return {k: npz_stream.NpzRows(path, k) if lazy and k.endswith("_images") else z[k]
              for k in KEYS}
  except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
    raise ValueError(f"{path}: cannot read as a MedMNIST npz: {e}") from e


def _check_split(path: str, s: str, split: Split) -> None:
  images, labels = split.images, split.labels
  if images.dtype != np.uint8:
    raise ValueError(f"{path}: {s}_images has dtype {images.dtype}; MedMNIST images are uint8.")
  if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
    raise ValueError(f"{path}: {s}_images has shape {images.shape}; expected (N, H, W) "
                     "or (N, H, W, 3).")
  if labels.dtype.kind == "f" and np.isnan(labels).any():
    raise ValueError(f"{path}: {s}_labels contains NaN.")
  if labels.dtype.kind not in "iu":
    raise ValueError(f"{path}: {s}_labels has dtype {labels.dtype}; expected integer labels "
                     "(MedMNIST uses uint8).")
  if labels.ndim not in (1, 2):
    raise ValueError(f"{path}: {s}_labels has shape {labels.shape}; expected (N, L), or "
                     "(N,) for one label per image.")
  if len(images) != len(labels):
    raise ValueError(f"{path}: {s} has {len(images)} images but {len(labels)} labels.")
  if len(images) == 0:
    raise ValueError(f"{path}: {s} split is empty.")


def _check_same_image_shape(path: str, splits: Mapping[str, Split]) -> None:
  shapes = {s: split.images.shape[1:] for s, split in splits.items()}
  if len(set(shapes.values())) != 1:
    raise ValueError(f"{path}: image sizes differ between splits: {shapes}.")
  label_cols = {s: split.labels.shape[1] for s, split in splits.items()}
  if len(set(label_cols.values())) != 1:
    raise ValueError(f"{path}: label columns differ between splits: {label_cols}.")


def infer_task(splits: Mapping[str, Split]) -> tuple[str, int]:
  """(task, num_classes) of a user's file: L > 1 -> multi-label, else by max label."""
  cols = splits["train"].labels.shape[1]
  if cols > 1:
    return tasks.MULTI_LABEL, cols
  n = int(max(split.labels.max() for split in splits.values())) + 1
  return (tasks.BINARY if n <= 2 else tasks.MULTI_CLASS), max(n, 2)


def check_labels(path: str, splits: Mapping[str, Split], task: str, num_classes: int) -> None:
  """Labels in range for the task: 0/1 per column (multi-label), else 0..C-1 in one column."""
  tasks.check_task(task)
  for s, split in splits.items():
    labels = split.labels
    if tasks.is_multilabel(task):
      if labels.shape[1] != num_classes:
        raise ValueError(f"{path}: {s}_labels has {labels.shape[1]} columns; the multi-label "
                         f"task has {num_classes} labels.")
      bad = ~np.isin(labels, (0, 1))
      expected = "0 or 1"
    else:
      if labels.shape[1] != 1:
        raise ValueError(f"{path}: {s}_labels has {labels.shape[1]} columns; a {task} task "
                         "has one label column.")
      bad = (labels < 0) | (labels >= num_classes)
      expected = f"in 0..{num_classes - 1}"
    if bad.any():
      idx = int(np.argwhere(bad)[0][0])
      raise ValueError(f"{path}: {s}_labels[{idx}] = {labels[idx].tolist()} out of range; "
                       f"expected {expected} for task {task!r}.")


def write_npz(path: str, splits: Mapping[str, Split], *, flat_labels: bool = False) -> None:
  """Writes a MedMNIST-layout npz atomically (compressed, as MedMNIST's own files).

  With `flat_labels`, the (N, 1) labels are written as (N,), as the file they
  were read from stored them.
  """
  arrays = {}
  for s in SPLITS:
    labels = splits[s].labels
    if flat_labels:
      if labels.ndim != 2 or labels.shape[1] != 1:
        raise ValueError(f"flat labels need one label column; {s} labels are {labels.shape}.")
      labels = labels[:, 0]
    arrays[f"{s}_images"] = splits[s].images
    arrays[f"{s}_labels"] = labels
  atomic.save_npz(path, compressed=True, **arrays)
