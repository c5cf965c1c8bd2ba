"""Atomic file writes: a reader sees the old file or the whole new one, never half.

Everything salm_jax writes (protected datasets, manifests, tables, reports,
downloads) goes through here: write to a temporary file in the same folder,
flush and fsync, then `os.replace` it onto the final name. A crash or a kill
leaves at most a stray `.tmp-*` file, which the next write cleans up.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb") -> Iterator[io.IOBase]:
  """Opens a temporary file next to `path`; renames it onto `path` on success."""
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', got {mode!r}.")
  path = os.path.expanduser(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(path)}-", dir=folder)
  try:
    with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def write_bytes(path: str, data: bytes) -> None:
  with atomic_open(path, "wb") as f:
    f.write(data)


def write_text(path: str, text: str) -> None:
  with atomic_open(path, "w") as f:
    f.write(text)


def write_json(path: str, obj: Any) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def save_npz(path: str, compressed: bool = False, **arrays: np.ndarray) -> None:
  """`np.savez` (or `savez_compressed`) onto `path`, atomically."""
  with atomic_open(path, "wb") as f:
    (np.savez_compressed if compressed else np.savez)(f, **arrays)


def to_jsonable(obj: Any) -> Any:
  """`obj` as plain JSON data: numpy scalars/arrays, tuples and sets become lists/numbers."""
  return json.loads(json.dumps(obj, default=_json_default))


def _json_default(obj: Any) -> Any:
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, (set, frozenset)):
    return sorted(obj)
  raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
