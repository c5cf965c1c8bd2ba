"""The in-memory dataset every part of salm_jax passes around.

A `Dataset` holds MedMNIST's arrays: uint8 images (N, H, W) or (N, H, W, C)
and labels (N, L), whatever the source looked like on disk (flat (N,) labels,
a folder of PNGs, DICOM files). `layout` remembers that source shape, so the
protected copy can be written back in it. The float view used by models and
noise, NHWC in [0, 1], is made on demand by `as_float`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # uint8, (N, H, W) or (N, H, W, C)
  labels: np.ndarray  # integer, (N, L) (flat files are reshaped on load)

  def __len__(self) -> int:
    return int(self.images.shape[0])


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A MedMNIST-layout dataset.

  Attributes:
    name: 'breastmnist', 'phantom', or a user's file stem.
    task: a MedMNIST task type (see `salm_jax.tasks`).
    num_classes: classes (single-label tasks) or labels (multi-label).
    label_names: MedMNIST's `label` dict, index string -> name.
    splits: 'train' / 'val' / 'test' -> Split.
    source: where it came from (a path, or a description for built-in data).
    source_md5: MD5 of the source file, '' for generated data.
    layout: how the source stores the data, for writing it back the same
      way: {} for a MedMNIST-layout npz; {'format': 'npz', 'label_shape':
      '(N,)'} for flat labels; {'format': 'folder', ...} for a folder of
      images or DICOM files (see `salm_jax.data.folder`).
  """
  name: str
  task: str
  num_classes: int
  label_names: Mapping[str, str]
  splits: Mapping[str, Split]
  source: str = ""
  source_md5: str = ""
  layout: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def train(self) -> Split:
    return self.splits["train"]

  @property
  def val(self) -> Split:
    return self.splits["val"]

  @property
  def test(self) -> Split:
    return self.splits["test"]

  @property
  def image_size(self) -> int:
    return int(self.train.images.shape[1])

  @property
  def channels(self) -> int:
    imgs = self.train.images
    return 1 if imgs.ndim == 3 else int(imgs.shape[-1])

  def replace(self, **changes) -> "Dataset":
    return dataclasses.replace(self, **changes)


def as_nhwc(images: np.ndarray) -> np.ndarray:
  """(N,H,W[,C]) -> NHWC, a view (gray images get their channel axis); an image file read by
  rows (`npz_stream.NpzRows`) stays in its file."""
  if hasattr(images, "nhwc"):
    return images.nhwc()
  x = np.asarray(images)
  return x[..., None] if x.ndim == 3 else x


def as_float(images: np.ndarray) -> np.ndarray:
  """uint8 (N,H,W[,C]) -> float32 NHWC in [0, 1]."""
  return as_nhwc(images).astype(np.float32) / 255.0


def to_float(images: np.ndarray) -> np.ndarray:
  """float32 images in [0, 1] from either form: uint8 (the written form) is converted."""
  images = np.asarray(images)
  return as_float(images) if images.dtype == np.uint8 else images.astype(np.float32, copy=False)


def rows_per_chunk(shape: tuple[int, ...], values: int = 1 << 22) -> int:
  """Images per chunk of about `values` pixel values (4 Mi), for work done a chunk at a time."""
  return max(1, values // max(1, int(np.prod(shape[1:]))))


def as_uint8_like(x: np.ndarray, like: np.ndarray) -> np.ndarray:
  """float NHWC in [0, 1] -> uint8 in the layout of `like` ((N,H,W) stays 3-D)."""
  out = np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)
  return out.reshape(like.shape)
