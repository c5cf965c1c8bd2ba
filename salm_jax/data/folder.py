"""A folder of images with a `labels.csv`, read as a `Dataset` and written back the same way.

Data owners rarely hold MedMNIST npz files; they hold a folder of PNG or
JPEG files (or DICOM, see `dicom.py`) and a spreadsheet of labels. Pointing
`config.dataset.name` at such a folder runs the same pipeline; the protected
copy is again a folder with the same file names and `labels.csv`, so it can
be published in place of the original. Choices, and why:

- Native size, no resampling. One dataset's images must share one size (and
  channel count) to be batched; a folder that mixes sizes is refused, naming
  the first odd file. Resizing to a MedMNIST size (28/64/128/224) would make
  the published images someone else's pixels: resampling back to the
  original size would smear the noise and break its L∞ bound. So the owner
  resizes beforehand if needed; `dataset.size` is not used for folders.
- Splits: the CSV's `split` column, else a fixed 70/10/20 permutation
  (`labels_csv.assign_splits`).
- PNG is written losslessly, so the written pixels are exactly the protected
  ones (checked by reading each file back). A JPEG of a perturbed split is
  written as PNG (`x.jpg` -> `x.png`, `labels.csv` updated, the manifest says
  so): re-encoding as JPEG, at any quality, would erase part of the noise and
  change clean pixels too, breaking the L∞ promise; the evaluation's
  `jpeg:quality=Q` defense measures what JPEG does to the protection.
  Unperturbed files are copied byte for byte, JPEG or not.
- Nothing is half-written: the folder is built in a temporary sibling and
  renamed into place; a bad row, a missing file or an unreadable image fails
  with its CSV line and file name before anything is written.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
from typing import Any, Mapping

import numpy as np
from absl import logging

from salm_jax import tasks
from salm_jax.data import dicom
from salm_jax.data import labels_csv
from salm_jax.data import npz_io
from salm_jax.data.dataset import SPLITS, Dataset, Split
from salm_jax.data.download import md5_file

FORMAT = "folder"
KIND_IMAGE, KIND_DICOM = "image", "dicom"
IMAGE_FORMATS = ("PNG", "JPEG")
_PER_FILE = ("files", "file_formats")  # in memory only, not in the manifest


def is_folder(name: str) -> bool:
  return os.path.isdir(os.path.expanduser(name))


def public_layout(layout: Mapping[str, Any]) -> dict:
  """`Dataset.layout` without its per-file lists (the CSV already holds them)."""
  return {k: v for k, v in layout.items() if k not in _PER_FILE}


def load_folder(path: str, *, task: str | None = None, num_classes: int | None = None,
                value_range=None) -> Dataset:
  """Reads `<path>/labels.csv` and every file it lists into a checked `Dataset`.

  Args:
    path: the folder.
    task, num_classes: override the task inferred from the labels
      (single-label only: the CSV holds one label per image).
    value_range: DICOM only, the [lo, hi] of the uint8 view; default: the
      data's own (a protected copy is read with its clean data's range).
  """
  root = os.path.abspath(os.path.expanduser(path))
  rows = labels_csv.read_rows(root)
  kind = _kind(root, rows)
  pixels, formats = (_read_dicoms if kind == KIND_DICOM else _read_images)(root, rows)
  layout: dict[str, Any] = {"format": FORMAT, "kind": kind, "labels_file": labels_csv.LABELS_FILE}
  if kind == KIND_DICOM:
    vrange = [int(v) for v in (value_range if value_range is not None
                               else dicom.value_range(pixels))]
    pixels = [dicom.to_view(p, vrange) for p in pixels]
    layout.update(value_range=vrange, stored_units_per_level=dicom.scale(vrange))
  labels, label_names = labels_csv.label_indices(root, rows)
  assigned, layout["split_rule"] = labels_csv.assign_splits(root, rows)
  splits, layout["files"], layout["file_formats"] = _splits(pixels, labels, rows, formats,
                                                            assigned)
  layout["input_formats"] = {f: formats.count(f) for f in sorted(set(formats))}
  task, num_classes, label_names = _task(root, splits, label_names, task, num_classes)
  return Dataset(name=os.path.basename(root), task=task, num_classes=num_classes,
                 label_names=label_names, splits=splits, source=root,
                 source_md5=folder_digest(root), layout=layout)


def _kind(root: str, rows: list[labels_csv.Row]) -> str:
  """'dicom' or 'image' for the whole folder; a missing file or a mix is an error."""
  kinds = []
  for r in rows:
    path = os.path.join(root, r.filename)
    if not os.path.isfile(path):
      raise ValueError(f"{labels_csv.csv_path(root)} row {r.line} ({r.filename}): file not "
                       f"found in {root}.")
    kinds.append(KIND_DICOM if dicom.is_dicom_file(path) else KIND_IMAGE)
    if kinds[-1] != kinds[0]:
      raise ValueError(f"{labels_csv.csv_path(root)} row {r.line} ({r.filename}) is "
                       f"{kinds[-1]}, but row {rows[0].line} ({rows[0].filename}) is "
                       f"{kinds[0]}; one folder holds DICOM files or PNG/JPEG images, not both.")
  return kinds[0]


def _where(root: str, row: labels_csv.Row) -> str:
  return f"{labels_csv.csv_path(root)} row {row.line} ({row.filename})"


def read_image(path: str):
  """(uint8 (H, W) or (H, W, 3), 'PNG' | 'JPEG'); ValueError for anything else."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with Image.open(path) as im:
      im.load()
      fmt, mode = im.format, im.mode
      pixels = np.array(im)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise ValueError(f"cannot read the image: {type(e).__name__}: {e}") from e
  if fmt not in IMAGE_FORMATS:
    raise ValueError(f"{fmt} image; supported: PNG, JPEG (or DICOM).")
  if mode not in ("L", "RGB"):
    raise ValueError(f"image mode {mode}; supported: 8-bit grayscale (L) or RGB. Convert it "
                     "first, e.g. PIL.Image.open(p).convert('L').save(p).")
  return pixels, fmt


def _read_images(root, rows):
  pixels, formats = [], []
  for r in rows:
    try:
      p, fmt = read_image(os.path.join(root, r.filename))
    except ValueError as e:
      raise ValueError(f"{_where(root, r)}: {e}") from e
    _check_same(root, rows, r, _describe(p), _describe(pixels[0]) if pixels else None)
    pixels.append(p)
    formats.append(fmt)
  return pixels, formats


def _read_dicoms(root, rows):
  pixels, first = [], None
  for r in rows:
    try:
      ds, p = dicom.read(os.path.join(root, r.filename))
    except ValueError as e:
      raise ValueError(f"{_where(root, r)}: {e}") from e
    head = dicom.describe(ds, p)
    _check_same(root, rows, r, head, first)
    first = first or head
    pixels.append(p)
  return pixels, ["DICOM"] * len(rows)


def _describe(pixels: np.ndarray) -> str:
  h, w = pixels.shape[:2]
  return f"{w}x{h} {'RGB' if pixels.ndim == 3 else 'gray'}"


def _check_same(root, rows, row, got, want) -> None:
  if want is not None and got != want:
    raise ValueError(
        f"{_where(root, row)} is {got}, but {_where(root, rows[0])} is {want}. The images of "
        "one dataset must share one size and format to be batched; salm_jax does not resample "
        "(the published images must be your pixels plus bounded noise), so resize or convert "
        "them beforehand.")


def _splits(pixels, labels, rows, formats, assigned):
  splits, files, file_formats = {}, {}, {}
  for s in SPLITS:
    idx = [i for i, a in enumerate(assigned) if a == s]
    splits[s] = Split(images=np.stack([pixels[i] for i in idx]), labels=labels[idx])
    files[s] = [rows[i].filename for i in idx]
    file_formats[s] = [formats[i] for i in idx]
  return splits, files, file_formats


def _task(root, splits, label_names, task, num_classes):
  """(task, num_classes, label_names): inferred as for an npz, or the given ones, checked."""
  inferred_task, inferred_n = npz_io.infer_task(splits)
  task = tasks.check_task(task) if task is not None else inferred_task
  if tasks.is_multilabel(task):
    raise ValueError(f"{labels_csv.csv_path(root)} holds one label per image; the multi-label "
                     "task is not supported for image folders.")
  n = int(num_classes) if num_classes is not None else max(inferred_n, len(label_names))
  npz_io.check_labels(labels_csv.csv_path(root), splits, task, n)
  names = {str(i): label_names.get(str(i), str(i)) for i in range(n)}
  return task, n, names


def folder_digest(root: str) -> str:
  """MD5 over `labels.csv` and every file it lists (name and MD5 of each, sorted).

  The folder's fingerprint for the manifest: any changed, missing or renamed
  file changes it; files the CSV does not list do not count.
  """
  names = [labels_csv.LABELS_FILE] + [r.filename for r in labels_csv.read_rows(root)]
  digest = hashlib.md5()
  for name in sorted(names):
    digest.update(f"{name}\t{md5_file(os.path.join(root, name))}\n".encode())
  return digest.hexdigest()


def write_folder(out_dir: str, dataset: Dataset,
                 protected: Mapping[str, np.ndarray]) -> tuple[str, str, dict]:
  """Writes `<out_dir>/<dataset.name>/` like the source folder; returns (name, MD5, notes).

  Files of the splits in `protected` get the protected pixels; the others,
  and labels.csv, are copied byte for byte (the CSV is rewritten only when a
  JPEG became a PNG). Built in a temporary folder, renamed into place last.
  """
  layout, name = dataset.layout, dataset.name
  renames = _png_renames(dataset, protected)
  for stale in glob.glob(os.path.join(out_dir, f".tmp-{name}-*")):
    shutil.rmtree(stale, ignore_errors=True)  # left by a killed run
  os.makedirs(out_dir, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out_dir)
  try:
    notes = _write_files(tmp, dataset, protected, renames)
    csv_out = os.path.join(tmp, labels_csv.LABELS_FILE)
    if renames:
      labels_csv.write_renamed(dataset.source, csv_out, renames)
      notes["written_as_png"] = len(renames)
      notes["note"] = (f"{len(renames)} JPEG file(s) of the perturbed splits were written as "
                       "lossless PNG (x.jpg -> x.png, labels.csv updated): a JPEG re-encoding "
                       "would erase part of the noise and change clean pixels too.")
      logging.warning("%s: %s", dataset.name, notes["note"])
    else:
      shutil.copyfile(labels_csv.csv_path(dataset.source), csv_out)
    digest = folder_digest(tmp)
    _replace_dir(tmp, os.path.join(out_dir, name))
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  notes.update(public_layout(layout))
  return name, digest, notes


def _png_renames(dataset: Dataset, protected) -> dict[str, str]:
  """{'x.jpg': 'x.png'} for each JPEG of a perturbed split; refuses a clash of names."""
  layout = dataset.layout
  listed = {f for s in SPLITS for f in layout["files"][s]}
  renames = {}
  for s in protected:
    for f, fmt in zip(layout["files"][s], layout["file_formats"][s]):
      if fmt == "JPEG":
        new = os.path.splitext(f)[0] + ".png"
        if new in listed or new in renames.values():
          raise ValueError(f"{dataset.source}: {f} is JPEG and must be written as lossless "
                           f"{new}, but that name is taken; rename one of them.")
        renames[f] = new
  return renames


def _write_files(tmp, dataset, protected, renames) -> dict:
  layout, notes = dataset.layout, {}
  for s in SPLITS:
    linf = 0
    for i, rel in enumerate(layout["files"][s]):
      src = os.path.join(dataset.source, rel)
      dst = os.path.join(tmp, renames.get(rel, rel))
      os.makedirs(os.path.dirname(dst), exist_ok=True)
      if s not in protected:
        shutil.copyfile(src, dst)
      elif layout["kind"] == KIND_DICOM:
        noise = protected[s][i].astype(np.int16) - dataset.splits[s].images[i].astype(np.int16)
        delta = dicom.write_with_noise(src, dst, noise, layout["value_range"])
        linf = max(linf, int(np.abs(delta).max(initial=0)))
      else:
        write_png(src, dst, protected[s][i])
    if s in protected and layout["kind"] == KIND_DICOM:
      notes.setdefault("measured_linf_stored", {})[s] = linf
  if layout["kind"] == KIND_DICOM:
    notes["note"] = ("epsilon applies to the uint8 view of the stored values: one level is "
                     "stored_units_per_level stored units, so a stored pixel changes by at most "
                     "round(linf_bound_uint8 * stored_units_per_level); measured_linf_stored is "
                     "the largest change read back from the written files.")
  return notes


def write_png(src: str, dst: str, pixels: np.ndarray) -> None:
  """`pixels` as a PNG at `dst`, with `src`'s ICC profile, EXIF and DPI; checked on read-back."""
  from PIL import Image, PngImagePlugin  # pylint: disable=import-outside-toplevel
  with Image.open(src) as im:
    info = dict(im.info)
    text = dict(getattr(im, "text", {}) or {})
  kwargs = {k: info[k] for k in ("icc_profile", "exif", "dpi") if info.get(k)}
  if text:
    kwargs["pnginfo"] = PngImagePlugin.PngInfo()
    for k, v in text.items():
      kwargs["pnginfo"].add_text(k, str(v))
  Image.fromarray(pixels).save(dst, format="PNG", **kwargs)
  back, _ = read_image(dst)
  if not np.array_equal(back, pixels):
    raise ValueError(f"{dst}: the written PNG does not read back as the protected pixels.")


def _replace_dir(tmp: str, final: str) -> None:
  """Moves the finished `tmp` onto `final`; an older `final` is moved aside, then removed."""
  old = None
  if os.path.exists(final):
    old = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(final)}-old-",
                           dir=os.path.dirname(final))
    os.rename(final, os.path.join(old, "data"))
  os.rename(tmp, final)
  if old:
    shutil.rmtree(old, ignore_errors=True)
