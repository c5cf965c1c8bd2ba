"""One entry point from a dataset name to a checked, in-memory `Dataset`.

A MedMNIST flag, the built-in phantom, a user's own npz and a folder of
images (PNG/JPEG or DICOM, with a labels.csv) all end up as the same
`Dataset`, checked the same way, so nothing downstream needs to know where
the data came from. MedMNIST files live in `data_dir` (default
`~/.medmnist`, the medmnist package's own default, so downloads are shared)
under MedMNIST's file names, and a missing one is downloaded and MD5-checked.
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import ml_collections

from salm_jax import tasks
from salm_jax.data import download as download_lib
from salm_jax.data import folder as folder_lib
from salm_jax.data import info as info_lib
from salm_jax.data import npz_io
from salm_jax.data import phantom as phantom_lib
from salm_jax.data.dataset import Dataset

DEFAULT_DATA_DIR = "~/.medmnist"


def default_phantom_config() -> ml_collections.ConfigDict:
  """The phantom's options; the defaults keep the README's main job under a minute."""
  return ml_collections.ConfigDict({
      "task": "binary",     # 'binary' | 'multi-class' | 'multi-label'
      "num_classes": 2,     # classes (multi-class) or findings (multi-label)
      "channels": 1,        # 1 gray, 3 RGB
      "n_train": 512,
      "n_val": 128,
      "n_test": 256,
      "seed": 0,
      "lesion_contrast": 0.0,  # 0: bright lesions; > 0: lesions this many levels above the organ
  })


def default_config() -> ml_collections.ConfigDict:
  """The `config.dataset` block."""
  return ml_collections.ConfigDict({
      "name": "phantom",    # a MedMNIST flag, 'phantom', a path to a .npz, or a folder
      "size": 28,           # 28 | 64 | 128 | 224 (MedMNIST); the phantom's side too (npz
                            # files and folders keep their own size)
      "data_dir": DEFAULT_DATA_DIR,
      "download": True,
      "phantom": default_phantom_config(),
  })


def load_from_config(cfg: ml_collections.ConfigDict, *, lazy: bool = False) -> Dataset:
  """The config's dataset; `lazy`: an npz's images stay in the file, read by rows."""
  return load_dataset(cfg.name, size=cfg.size, data_dir=cfg.data_dir, download=cfg.download,
                      phantom=cfg.get("phantom"), lazy=lazy)


def load_dataset(name: str, *, size: int = 28, data_dir: str = DEFAULT_DATA_DIR,
                 download: bool = True, phantom: Any = None, task: str | None = None,
                 num_classes: int | None = None, lazy: bool = False) -> Dataset:
  """Loads a MedMNIST flag, 'phantom', a custom `.npz` path or a folder, fully checked.

  Args:
    name: 'breastmnist' (any of `info.FLAGS`), 'phantom', a path ending in .npz,
      or a folder with a labels.csv (see `salm_jax.data.folder`).
    size: MedMNIST image size, or the phantom's side.
    data_dir: folder of MedMNIST files.
    download: fetch a missing MedMNIST file from its official URL.
    phantom: phantom options (dict or ConfigDict), over `default_phantom_config()`.
    task, num_classes: override the task inferred for a custom npz or folder.
    lazy: an npz's image arrays stay in the file (`npz_stream.NpzRows`), read by rows.

  Raises:
    ValueError: unknown name or size, or a file that fails a check.
    DownloadError: a missing file could not be downloaded.
  """
  if name == "phantom":
    opts = default_phantom_config().to_dict()
    opts.update(phantom.to_dict() if hasattr(phantom, "to_dict") else dict(phantom or {}))
    return phantom_lib.make_phantom(size=size, **opts)
  if name.endswith(".npz"):
    return load_custom(name, task=task, num_classes=num_classes, lazy=lazy)
  if name not in info_lib.INFO and folder_lib.is_folder(name):  # a flag wins over a folder
    return folder_lib.load_folder(name, task=task, num_classes=num_classes)
  if os.sep in name or name.startswith("."):
    raise ValueError(f"{name}: no such folder (a dataset path must be an existing folder with "
                     "a labels.csv, or a file ending in .npz).")
  return load_medmnist(name, size=size, data_dir=data_dir, download=download, lazy=lazy)


def load_medmnist(flag: str, *, size: int = 28, data_dir: str = DEFAULT_DATA_DIR,
                  download: bool = True, lazy: bool = False) -> Dataset:
  """A MedMNIST 2D dataset from `data_dir`, downloaded first if missing and allowed."""
  meta = info_lib.info_for(flag)
  path = os.path.join(os.path.expanduser(data_dir), info_lib.file_name(flag, size))
  url, want_md5 = info_lib.url(flag, size), info_lib.md5(flag, size)
  if not os.path.exists(path):
    if not download:
      raise ValueError(f"{path} not found and download=False. "
                       + download_lib.manual_instructions(url, path, want_md5))
    download_lib.fetch(url, path, want_md5)
  got_md5 = download_lib.md5_file(path)
  if got_md5 != want_md5:
    warnings.warn(f"{path}: MD5 {got_md5} differs from MedMNIST v3's {want_md5}; "
                  "it may be an older MedMNIST release or a modified file.", stacklevel=2)
  splits = npz_io.read_npz(path, lazy=lazy)
  task, n = meta["task"], info_lib.num_classes(flag)
  npz_io.check_labels(path, splits, task, n)
  _check_medmnist_shape(path, splits, meta, size)
  return Dataset(name=flag, task=task, num_classes=n, label_names=dict(meta["label"]),
                 splits=splits, source=os.path.abspath(path), source_md5=got_md5)


def _check_medmnist_shape(path, splits, meta, size) -> None:
  images = splits["train"].images
  channels = 1 if images.ndim == 3 else images.shape[-1]
  if images.shape[1:3] != (size, size) or channels != meta["n_channels"]:
    raise ValueError(f"{path}: images are {images.shape[1:]}, expected {size}x{size} with "
                     f"{meta['n_channels']} channel(s).")


def load_custom(path: str, *, task: str | None = None,
                num_classes: int | None = None, lazy: bool = False) -> Dataset:
  """A user's npz in MedMNIST's layout; task and classes inferred unless given.

  Flat (N,) labels are read as (N, 1) and remembered in `Dataset.layout`, so
  the protected copy is written flat too.
  """
  path = os.path.expanduser(path)
  splits, flat = npz_io.read_npz_layout(path, lazy=lazy)
  inferred_task, inferred_n = npz_io.infer_task(splits)
  task = tasks.check_task(task) if task is not None else inferred_task
  if flat and tasks.is_multilabel(task):
    raise ValueError(f"{path}: labels are flat (N,), one label per image; the multi-label "
                     "task needs (N, L) 0/1 labels.")
  if num_classes is None:
    num_classes = (splits["train"].labels.shape[1] if tasks.is_multilabel(task)
                   else inferred_n)
  npz_io.check_labels(path, splits, task, int(num_classes))
  label_names = {str(i): str(i) for i in range(int(num_classes))}
  return Dataset(name=os.path.splitext(os.path.basename(path))[0], task=task,
                 num_classes=int(num_classes), label_names=label_names, splits=splits,
                 source=os.path.abspath(path), source_md5=download_lib.md5_file(path),
                 layout=npz_io.layout(flat))
