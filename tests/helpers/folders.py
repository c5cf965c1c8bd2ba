"""Small generated data in the layouts people have: image folders, DICOM folders, flat npz."""
import csv
import os

import numpy as np

from tests.helpers import tiny

SPLIT_SIZES = {"train": 48, "val": 16, "test": 16}


def blob_images(n: int, size: int = 16, channels: int = 1, seed: int = 0):
  """uint8 (n, size, size[, 3]) blob images and their (n,) int labels (the blob's size)."""
  images, labels = tiny.blobs(n=n, size=size, channels=channels, seed=seed)
  pixels = np.rint(images * 255).astype(np.uint8)
  return (pixels[..., 0] if channels == 1 else pixels), labels[:, 0]


def write_csv(folder, rows, header=("filename", "label", "split")) -> str:
  path = os.path.join(folder, "labels.csv")
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return path


def image_folder(folder, *, fmt: str = "PNG", channels: int = 1, size: int = 16,
                 split_column: bool = True, names=None, sizes=SPLIT_SIZES) -> list:
  """A folder of PNG/JPEG blobs with labels.csv; returns the CSV rows written."""
  from PIL import Image
  os.makedirs(folder, exist_ok=True)
  n = sum(sizes.values())
  pixels, labels = blob_images(n, size, channels)
  splits = [s for s, k in sizes.items() for _ in range(k)]
  ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
  rows = []
  for i in range(n):
    name = f"img_{i:03d}.{ext}" if i % 5 else f"sub/img_{i:03d}.{ext}"  # subfolders too
    os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
    Image.fromarray(pixels[i]).save(os.path.join(folder, name), format=fmt)
    label = names[labels[i]] if names else int(labels[i])
    rows.append([name, label, splits[i]] if split_column else [name, label])
  write_csv(folder, rows, ("filename", "label", "split") if split_column else
            ("filename", "label"))
  return rows


def dicom_file(path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2",
               bits_stored: int | None = None, uid_seed: int = 0) -> None:
  """An uncompressed (Explicit VR Little Endian) single-frame DICOM file of `pixels`."""
  import pydicom
  from pydicom.dataset import FileMetaDataset
  from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
  meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path), str(uid_seed)])
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = pydicom.Dataset()
  ds.file_meta = meta
  ds.SOPClassUID = meta.MediaStorageSOPClassUID
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.PatientName, ds.PatientID, ds.Modality = "Test^Phantom", "P0001", "OT"
  ds.StudyDescription = "salm_jax test"
  ds.Rows, ds.Columns = pixels.shape[:2]
  ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
  ds.PhotometricInterpretation = "RGB" if pixels.ndim == 3 else photometric
  if pixels.ndim == 3:
    ds.PlanarConfiguration = 0
  bits = pixels.dtype.itemsize * 8
  ds.BitsAllocated, ds.BitsStored = bits, bits_stored or bits
  ds.HighBit = ds.BitsStored - 1
  ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
  ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
  ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
  ds.save_as(path, enforce_file_format=True)


def dicom_folder(folder, *, size: int = 16, sizes=SPLIT_SIZES, dtype=np.uint16,
                 offset: int = 1000, gain: int = 12) -> list:
  """A folder of 16-bit DICOM blobs (stored = offset + gain · uint8) with labels.csv."""
  os.makedirs(folder, exist_ok=True)
  n = sum(sizes.values())
  pixels, labels = blob_images(n, size, 1)
  splits = [s for s, k in sizes.items() for _ in range(k)]
  rows = []
  for i in range(n):
    name = f"scan_{i:03d}.dcm"
    stored = (offset + gain * pixels[i].astype(np.int64)).astype(dtype)
    dicom_file(os.path.join(folder, name), stored, bits_stored=12 if dtype == np.uint16 else 16)
    rows.append([name, int(labels[i]), splits[i]])
  write_csv(folder, rows)
  return rows


def flat_label_npz(path, *, size: int = 16, sizes=SPLIT_SIZES) -> dict:
  """A MedMNIST-layout npz whose labels are flat (N,), as many re-saved copies store them."""
  arrays = {}
  for k, (s, n) in enumerate(sizes.items()):
    pixels, labels = blob_images(n, size, 1, seed=k)
    arrays[f"{s}_images"] = pixels
    arrays[f"{s}_labels"] = labels.astype(np.uint8)
  np.savez_compressed(path, **arrays)
  return arrays
