"""The protected files written a window of rows at a time: one npz, from any number of processes.

SALM noise for the train split (the default) is written this way, in one
process or in many; other methods, splits and folders of images take the
whole-array path of protect.py, in one process. Each process holds the
noise of its own rows only (`GeneratorResult.rows`; class-wise noise as the δ
of each class, expanded as needed). Window by window of about 4 Mi pixel
values in row order, every process quantizes the window's rows it owns against
its clean rows and hands them in, and process 0 streams them into the same
MedMNIST npz, `noise.npz` and manifest a one-process run writes
(`npz_stream.NpzWriter`). Process 0 reads the clean images of the window from
the source file as it goes, so no process holds the whole dataset or the whole
noise. One file rather than per-process shards: the output is what every
MedMNIST reader and the evaluate stage already read, and a window costs
process 0 only its own size.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils

from salm_jax import atomic
from salm_jax import data as data_lib
from salm_jax.data import folder as folder_lib
from salm_jax.data import npz_io
from salm_jax.data import npz_stream
from salm_jax.data import protected as protected_lib
from salm_jax.data.dataset import SPLITS, rows_per_chunk
from salm_jax.evaluation import utility
from salm_jax.noise import methods

SPLIT = "train"


def applies(config, dataset=None) -> bool:
  """Whether this path writes the run: SALM noise (it reads rows as it needs them) for the
  train split only, into an npz (`dataset=None`: the config's part of the test only)."""
  splits = config.noise.splits
  ok = ((list(splits) if not isinstance(splits, str) else [splits]) == [SPLIT]
        and methods.get(methods.method_name(config)).takes_uint8)
  return ok and (dataset is None or dataset.layout.get("format") != folder_lib.FORMAT)


def check(config, dataset) -> None:
  """A multi-process run is written by this path only: anything else is refused early."""
  if jax.process_count() > 1 and not applies(config, dataset):
    raise ValueError(
        f"A multi-process run protects the train split of an npz with SALM noise; got "
        f"method {methods.method_name(config)!r}, noise.splits {config.noise.splits}, "
        f"dataset layout {dataset.layout.get('format', 'npz')!r}. Run it in one process.")


def write(out_dir: str, dataset, result, epsilon: float, *, config, extra) -> tuple:
  """Writes the protected npz, noise.npz and manifest from every process's rows; returns
  (manifest, the first rows' clean, protected and masks for the preview) on process 0 and
  (None, None) elsewhere."""
  clean = data_lib.as_nhwc(dataset.splits[SPLIT].images)
  n = len(clean)
  rows = np.arange(n) if result.rows is None else result.rows
  mine = clean if result.rows is None and isinstance(clean, np.ndarray) else clean[rows]
  windows = _windows(clean, rows, _own_rows(mine, result, epsilon))
  if jax.process_index() != 0:
    for _ in windows:
      pass
    return None, None
  os.makedirs(out_dir, exist_ok=True)
  manifest_path = os.path.join(out_dir, protected_lib.MANIFEST_FILE)
  if os.path.exists(manifest_path):
    os.remove(manifest_path)  # until the new manifest lands, the folder is incomplete
  name = protected_lib.output_file_name(dataset)
  per, first, noise = [], None, _NoiseFile(out_dir, dataset.splits[SPLIT].images.shape)
  with atomic.atomic_open(os.path.join(out_dir, name), "wb") as f:
    writer = npz_stream.NpzWriter(f)
    member = writer.member(f"{SPLIT}_images", dataset.splits[SPLIT].images.shape, np.uint8)
    for c, p, m in windows:
      stored = p.reshape((len(p),) + dataset.splits[SPLIT].images.shape[1:])
      member.write(stored)
      noise.write(p.astype(np.int16) - c.astype(np.int16), m)
      per.append(utility.per_image_stats(c, p))
      first = first or (c[:8], p[:8], m[:8])
    member.close()
    _copy_the_rest(writer, dataset)
    writer.close()
  noise.close()
  config, fields = protected_lib.manifest_fields(config, extra)
  stats = {SPLIT: utility.summarize({k: np.concatenate([q[k] for q in per]) for k in per[0]})}
  manifest = protected_lib.build_manifest(
      out_dir, dataset, protected_lib.npz_data_entry(out_dir, dataset, name), [SPLIT], config,
      fields, stats, extra)
  atomic.write_json(manifest_path, manifest)
  return manifest, first


def _own_rows(mine: np.ndarray, result, epsilon: float) -> Callable:
  """(lo, hi) -> the protected uint8 images and masks of this process's rows lo..hi (positions
  in its sorted rows). Class-wise noise is expanded and quantized a window at a time."""
  noise = result.class_noise
  if noise is None:
    own = protected_lib.quantize(mine, result.delta, epsilon)
    return lambda lo, hi: (own[lo:hi], result.masks[lo:hi])
  def part(lo, hi):
    x = mine[lo:hi]
    return protected_lib.quantize(x, noise.delta(x, slice(lo, hi)), epsilon), noise.masks(
        slice(lo, hi))
  return part


def _windows(clean, rows: np.ndarray,
             own_rows: Callable) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """(clean, protected, masks) of consecutive row windows, whole on process 0 (every process
  must iterate: each window is one collective)."""
  n, shape, mask_shape = len(clean), clean.shape[1:], clean.shape[1:3]
  size = rows_per_chunk(clean.shape)
  reader = _chunks(clean, size) if jax.process_index() == 0 else None
  for start in range(0, n, size):
    stop = min(start + size, n)
    lo, hi = np.searchsorted(rows, [start, stop])
    ids = np.full(size, -1, np.int64)
    ids[:hi - lo] = rows[lo:hi]
    prot = np.zeros((size,) + shape, np.uint8)
    mask = np.zeros((size,) + mask_shape, bool)
    prot[:hi - lo], mask[:hi - lo] = own_rows(lo, hi)
    got = {"ids": ids, "prot": prot, "mask": mask}
    if jax.process_count() > 1:
      got = multihost_utils.process_allgather(got)
    if reader is None:
      continue
    ids, real = got["ids"].reshape(-1), got["ids"].reshape(-1) >= 0
    out_p = np.empty((stop - start,) + shape, np.uint8)
    out_m = np.empty((stop - start,) + mask_shape, bool)
    out_p[ids[real] - start] = got["prot"].reshape((-1,) + shape)[real]
    out_m[ids[real] - start] = got["mask"].reshape((-1,) + mask_shape)[real]
    yield next(reader), out_p, out_m


def _copy_the_rest(writer: npz_stream.NpzWriter, dataset) -> None:
  """The train labels, and the other splits bit for bit, a chunk at a time."""
  flat = npz_io.has_flat_labels(dataset.layout)
  for s in SPLITS:
    images = dataset.splits[s].images
    if s != SPLIT:
      member = writer.member(f"{s}_images", images.shape, np.uint8)
      for chunk in _chunks(images):
        member.write(chunk)
      member.close()
    labels = dataset.splits[s].labels
    writer.add(f"{s}_labels", labels[:, 0] if flat else labels)


def _chunks(images, rows: int | None = None) -> Iterator[np.ndarray]:
  """An array or an npz member (`npz_stream.NpzRows`, read once) in consecutive chunks of
  `rows` rows (default: about 4 Mi values)."""
  if not isinstance(images, np.ndarray):
    return (chunk for _, chunk in images.chunks(rows))
  step = rows or rows_per_chunk(images.shape)
  return (images[i:i + step] for i in range(0, len(images), step))


class _NoiseFile:
  """noise.npz written as the rows arrive: int8 noise, then the masks' bits (kept in a side
  file until the noise member is done) and their shape."""

  def __init__(self, out_dir: str, shape: tuple[int, ...]):
    self._path = os.path.join(out_dir, protected_lib.NOISE_FILE)
    self._file = open(self._path + ".partial", "wb")
    self._bits_file = open(self._path + ".bits", "w+b")
    self._writer = npz_stream.NpzWriter(self._file)
    self._shape, self._rows, self._left = shape, 0, np.zeros(0, bool)
    self._noise = self._writer.member(f"{SPLIT}_noise", shape, np.int8)

  def write(self, diff: np.ndarray, masks: np.ndarray) -> None:
    self._noise.write(diff.reshape((len(diff),) + self._shape[1:]).astype(np.int8))
    self._rows += len(masks)
    bits = np.concatenate([self._left, masks.ravel()])
    whole = len(bits) // 8 * 8
    self._bits_file.write(np.packbits(bits[:whole]).tobytes())
    self._left = bits[whole:]

  def close(self) -> None:
    self._noise.close()
    self._bits_file.write(np.packbits(self._left).tobytes())
    size = self._bits_file.tell()
    self._bits_file.seek(0)
    member = self._writer.member(f"{SPLIT}_mask_bits", (size,), np.uint8)
    while chunk := self._bits_file.read(1 << 22):
      member.write(np.frombuffer(chunk, np.uint8))
    member.close()
    self._writer.add(f"{SPLIT}_mask_shape",
                     np.asarray((self._rows,) + tuple(self._shape[1:3]), np.int64))
    self._writer.close()
    self._file.close()
    self._bits_file.close()
    os.remove(self._path + ".bits")
    os.replace(self._path + ".partial", self._path)
