"""Reading and writing npz members a chunk of rows at a time.

`NpzRows` is one image array inside an npz (stored or deflated, as
MedMNIST's are) that loads only the rows it is asked for: a process of a
multi-host run reads its own rows and never holds the others'.
`NpzWriter` writes an npz member by member, each member fed in row chunks,
so a file larger than memory can be written; `np.load` reads it as it reads
`np.savez_compressed`'s files.
"""
from __future__ import annotations

import contextlib
import zipfile
from typing import Iterator

import numpy as np

from salm_jax.data.dataset import rows_per_chunk


class NpzRows:
  """An (N, ...) array member of an npz, read on demand: `rows[idx]` streams the member once
  and keeps only rows `idx`; `chunks()` yields it in consecutive row chunks."""

  def __init__(self, path: str, key: str, channel_axis: bool = False):
    self.path, self.key, self._channel = path, key, channel_axis
    with self._open() as f:
      self.stored_shape, self.dtype = _header(f, f"{path}:{key}")
    self.shape = self.stored_shape + ((1,) if channel_axis else ())

  def nhwc(self) -> "NpzRows":
    """The same member seen as (N, H, W, C): gray (N, H, W) images get their channel axis."""
    return NpzRows(self.path, self.key, channel_axis=len(self.stored_shape) == 3)

  @contextlib.contextmanager
  def _open(self):
    with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.key}.npy") as member:
      yield member

  @property
  def ndim(self) -> int:
    return len(self.shape)

  def __len__(self) -> int:
    return self.shape[0]

  def __array__(self, dtype=None, copy=None):
    return np.concatenate([c for _, c in self.chunks()] or [np.zeros(self.shape, self.dtype)])

  def __getitem__(self, idx) -> np.ndarray:
    idx = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx)
    order = np.argsort(idx, kind="stable")
    wanted = idx[order]
    out = np.empty((len(idx),) + self.shape[1:], self.dtype)
    at = 0
    for start, chunk in self.chunks():
      stop = np.searchsorted(wanted, start + len(chunk))
      out[order[at:stop]] = chunk[wanted[at:stop] - start]
      at = stop
      if at == len(wanted):
        break
    return out

  def chunks(self, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of the member in order, about 4 Mi values at a time."""
    rows = rows or rows_per_chunk(self.shape)
    row_bytes = int(np.prod(self.stored_shape[1:], dtype=np.int64)) * self.dtype.itemsize
    with self._open() as f:
      _header(f, self.key)
      for start in range(0, len(self), rows):
        n = min(rows, len(self) - start)
        data = f.read(n * row_bytes)
        yield start, np.frombuffer(data, self.dtype).reshape((n,) + self.shape[1:])


def _header(f, name: str) -> tuple[tuple[int, ...], np.dtype]:
  version = np.lib.format.read_magic(f)
  read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
          else np.lib.format.read_array_header_2_0)
  shape, fortran, dtype = read(f)
  if fortran or dtype.hasobject:
    raise ValueError(f"{name}: a Fortran-ordered or object array cannot be read by rows.")
  return tuple(shape), dtype


class NpzWriter:
  """An npz written member by member (deflated, as `np.savez_compressed`): `add` for a whole
  array, `member` for one fed in row chunks."""

  def __init__(self, f):
    self._zip = zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)

  def add(self, key: str, array: np.ndarray) -> None:
    with self._zip.open(f"{key}.npy", "w", force_zip64=True) as out:
      np.lib.format.write_array(out, np.asarray(array), allow_pickle=False)

  def member(self, key: str, shape: tuple[int, ...], dtype) -> "_Member":
    return _Member(self._zip.open(f"{key}.npy", "w", force_zip64=True), shape, dtype)

  def close(self) -> None:
    self._zip.close()


class _Member:
  """One member being written: its header first, then rows in order, checked at close."""

  def __init__(self, out, shape, dtype):
    self._out, self._shape, self._dtype, self._rows = out, tuple(shape), np.dtype(dtype), 0
    header = {"descr": np.lib.format.dtype_to_descr(self._dtype), "fortran_order": False,
              "shape": self._shape}
    np.lib.format.write_array_header_2_0(out, header)

  def write(self, rows: np.ndarray) -> None:
    rows = np.ascontiguousarray(rows, self._dtype)
    if rows.shape[1:] != self._shape[1:]:
      raise ValueError(f"rows of shape {rows.shape[1:]} for a member of {self._shape}")
    self._out.write(rows.tobytes())
    self._rows += len(rows)

  def close(self) -> None:
    self._out.close()
    if self._rows != self._shape[0]:
      raise ValueError(f"a member of {self._shape[0]} rows got {self._rows}")
