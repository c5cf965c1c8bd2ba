"""DICOM files as protectable images: read the pixels, write them back with noise, keep every tag.

Only uncompressed (native) little-endian pixel data is handled: one frame,
monochrome (MONOCHROME1/2) or RGB, 8 or 16 bits allocated, signed or
unsigned. Compressed transfer syntaxes (JPEG, JPEG 2000, RLE, ...) are
refused: writing noise into them would need a lossy re-encoding (which
destroys the noise, see the evaluation's `jpeg` defense) or a codec stack
that pydicom alone does not have.

The noise generator works on uint8. A DICOM's stored values are mapped to
that "view" linearly: 8-bit files as they are, 16-bit files from the value
range [lo, hi] of the whole dataset (its smallest and largest stored pixel),
one level of the view being s = (hi − lo) / 255 stored units. The noise
(int8 levels of the view) is written back as round(noise · s) stored units
added to the original stored values, clipped to what the file can hold; no
other pixel changes. So ε is a fraction of the dataset's stored range: the
stored change is at most round(round(255·ε) · s). Rescale slope/intercept
(e.g. CT Hounsfield units), windows and every other tag are left as they
are. pydicom (pure Python) is an optional dependency: `salm_jax[dicom]`.
"""
from __future__ import annotations

import os
import numpy as np

EXTENSIONS = (".dcm", ".dicom")
_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB")


def pydicom():
  """The pydicom module, or an ImportError saying how to install it."""
  try:
    import pydicom as module  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("Reading DICOM needs pydicom: pip install 'salm_jax[dicom]' "
                      "(pure Python, no other dependency).") from e
  return module


def is_dicom_file(path: str) -> bool:
  """By extension, or by the 'DICM' marker at byte 128 of a file without one."""
  ext = os.path.splitext(path)[1].lower()
  if ext in EXTENSIONS:
    return True
  if ext:
    return False
  try:
    with open(path, "rb") as f:
      return f.read(132)[128:132] == b"DICM"
  except OSError:
    return False


def read(path: str):
  """(pydicom Dataset, stored pixels (H, W) or (H, W, 3)); ValueError for what is not handled."""
  dcm = pydicom()
  try:
    ds = dcm.dcmread(path)
  except Exception as e:  # pydicom raises many types for a broken file
    raise ValueError(f"cannot read as DICOM: {type(e).__name__}: {e}") from e
  syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
  if syntax is None:
    raise ValueError("no transfer syntax in the file meta; cannot tell how pixels are stored.")
  if syntax.is_compressed or not syntax.is_little_endian:
    raise ValueError(f"transfer syntax {syntax.name} is not supported: only uncompressed "
                     "little-endian pixel data can take noise without a lossy re-encoding. "
                     "Decompress first (e.g. `gdcmconv --raw in.dcm out.dcm`).")
  if "PixelData" not in ds:
    raise ValueError("no pixel data.")
  if int(ds.get("NumberOfFrames", 1) or 1) != 1:
    raise ValueError(f"{ds.NumberOfFrames} frames; only single-frame images are supported.")
  photometric = str(ds.get("PhotometricInterpretation", ""))
  if photometric not in _PHOTOMETRIC or int(ds.get("BitsAllocated", 0)) not in (8, 16):
    raise ValueError(f"{photometric or 'no'} photometric interpretation with "
                     f"{ds.get('BitsAllocated')} bits allocated; supported: "
                     f"{', '.join(_PHOTOMETRIC)} with 8 or 16 bits.")
  try:
    pixels = np.array(ds.pixel_array)
  except Exception as e:
    raise ValueError(f"cannot decode the pixel data: {type(e).__name__}: {e}") from e
  return ds, pixels


def describe(ds, pixels: np.ndarray) -> str:
  """What must agree between the files of one dataset to batch them together, as text."""
  h, w = pixels.shape[:2]
  return (f"{w}x{h} {ds.PhotometricInterpretation} {pixels.dtype} "
          f"({int(ds.get('BitsStored', ds.BitsAllocated))} bits stored)")


def value_range(all_pixels: list[np.ndarray]) -> tuple[int, int]:
  """[lo, hi] of the uint8 view: (0, 255) for 8-bit data, else the data's min and max."""
  if all(p.dtype == np.uint8 for p in all_pixels):
    return 0, 255
  lo = min(int(p.min()) for p in all_pixels)
  hi = max(int(p.max()) for p in all_pixels)
  return lo, max(hi, lo + 1)


def scale(vrange) -> float:
  """Stored units per level of the uint8 view."""
  lo, hi = (int(v) for v in vrange)
  return (hi - lo) / 255.0


def to_view(pixels: np.ndarray, vrange) -> np.ndarray:
  """Stored values -> uint8 view, linearly from [lo, hi] to [0, 255]."""
  lo = int(vrange[0])
  x = (pixels.astype(np.float64) - lo) / scale(vrange)
  return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _stored_limits(ds, dtype: np.dtype) -> tuple[int, int]:
  """Smallest and largest value the file can hold, from BitsStored and PixelRepresentation."""
  bits = int(ds.get("BitsStored", ds.BitsAllocated))
  if int(ds.get("PixelRepresentation", 0)) == 1:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
  else:
    lo, hi = 0, (1 << bits) - 1
  info = np.iinfo(dtype)
  return max(lo, int(info.min)), min(hi, int(info.max))


def write_with_noise(src: str, dst: str, noise_view: np.ndarray, vrange) -> np.ndarray:
  """Writes `src` to `dst` with round(noise · s) added to its stored pixels; returns the change.

  Only PixelData is replaced; the file keeps its transfer syntax and every
  other element. The written file is read back, and its pixels must equal
  the intended ones.
  """
  ds, pixels = read(src)
  noise = np.asarray(noise_view, dtype=np.float64).reshape(pixels.shape)
  lo, hi = _stored_limits(ds, pixels.dtype)
  new = np.clip(pixels.astype(np.int64) + np.rint(noise * scale(vrange)).astype(np.int64), lo, hi)
  new = new.astype(pixels.dtype)
  out = new.transpose(2, 0, 1) if new.ndim == 3 and int(ds.get("PlanarConfiguration", 0)) else new
  data = np.ascontiguousarray(out).astype(out.dtype.newbyteorder("<")).tobytes()
  ds.PixelData = data + (b"\0" if len(data) % 2 else b"")  # DICOM values have even length
  ds.save_as(dst)
  _, back = read(dst)
  if not np.array_equal(back, new):
    raise ValueError(f"{dst}: the written pixels do not read back as written.")
  return new.astype(np.int64) - pixels.astype(np.int64)
