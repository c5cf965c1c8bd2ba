"""Fetching a MedMNIST file: stream, check the MD5, and only then make it visible.

A download that fails halfway (no network, a dropped connection, a wrong MD5)
must not leave a file that a later run would take for the real one. So the
body streams into a temporary file in the destination folder (via
`salm_jax.atomic.atomic_open`) while its MD5 is computed, and the file is
renamed onto its final name only when the MD5 matches. Every failure raises
`DownloadError` saying which file is needed, from where, and in which folder
to put it by hand, since many clusters have no network.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request

import tqdm

from salm_jax import atomic

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
  """A file could not be fetched or did not match its MD5."""


def md5_file(path: str, chunk_bytes: int = CHUNK_BYTES) -> str:
  """Hex MD5 of a file, read in chunks (MedMNIST's 224 px files are large)."""
  digest = hashlib.md5()
  with open(os.path.expanduser(path), "rb") as f:
    for chunk in iter(lambda: f.read(chunk_bytes), b""):
      digest.update(chunk)
  return digest.hexdigest()


def manual_instructions(url: str, dest_path: str, md5: str) -> str:
  """The text that tells a user how to put the file in place by hand."""
  dest_path = os.path.abspath(os.path.expanduser(dest_path))
  return (f"Download {os.path.basename(dest_path)} by hand from {url} "
          f"(expected MD5 {md5}) and put it in the folder {os.path.dirname(dest_path)} "
          f"(the data_dir), keeping the file name {os.path.basename(dest_path)}.")


def fetch(url: str, dest_path: str, md5: str, *, progress: bool = True,
          timeout: float = 60.0) -> str:
  """Downloads `url` to `dest_path` atomically and checks its MD5.

  Args:
    url: where to fetch from (http, https or file URL).
    dest_path: the final file path; its folder is created if needed.
    md5: expected hex MD5 of the whole file.
    progress: show a tqdm progress bar.
    timeout: seconds to wait on the connection and on each read.

  Returns:
    The absolute destination path.

  Raises:
    DownloadError: network failure, truncated body, or MD5 mismatch. Nothing
      is left at `dest_path` (nor any temporary file) in that case.
  """
  dest_path = os.path.abspath(os.path.expanduser(dest_path))
  name = os.path.basename(dest_path)
  try:
    with atomic.atomic_open(dest_path, "wb") as out:
      got_md5 = _stream(url, out, name, progress=progress, timeout=timeout)
      if got_md5 != md5.lower():
        raise DownloadError(f"MD5 mismatch for {name} from {url}: got {got_md5}, expected "
                            f"{md5}. The partial file was removed. "
                            + manual_instructions(url, dest_path, md5))
  except DownloadError:
    raise
  except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
    raise DownloadError(f"Could not download {name} from {url}: {e}. "
                        + manual_instructions(url, dest_path, md5)) from e
  return dest_path


def _stream(url: str, out, name: str, *, progress: bool, timeout: float) -> str:
  """Copies the body of `url` into `out`; returns its MD5. Checks Content-Length."""
  digest = hashlib.md5()
  received = 0
  with urllib.request.urlopen(url, timeout=timeout) as response:
    length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    total = int(length) if length and length.isdigit() else None
    with tqdm.tqdm(total=total, unit="B", unit_scale=True, desc=name,
                   disable=not progress, leave=False) as bar:
      for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
        out.write(chunk)
        digest.update(chunk)
        received += len(chunk)
        bar.update(len(chunk))
  if total is not None and received != total:
    raise OSError(f"connection closed after {received} of {total} bytes")
  return digest.hexdigest()
