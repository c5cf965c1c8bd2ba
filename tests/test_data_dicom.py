"""A folder of DICOM files: pixels protected, every other tag kept, output re-readable."""
import json
import os
import shutil

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom import examples  # noqa: E402

from configs import salm  # noqa: E402
from salm_jax import pipeline  # noqa: E402
from salm_jax.data import dicom, loading, protected  # noqa: E402
from tests.helpers import folders  # noqa: E402


def _tags_except_pixels(ds):
  return {str(e.tag): e.value for e in ds.iterall() if e.tag != 0x7FE00010}


def test_16bit_dicom_folder_through_protect_evaluate_report(tmp_path):
  src = tmp_path / "ct"
  rows = folders.dicom_folder(src)
  cfg = salm.get_config("synthetic,tiny")
  cfg.dataset.name = str(src)
  pipeline.run_all(cfg, str(tmp_path / "run"), progress=False)
  out = tmp_path / "run" / "protected"
  manifest = json.loads((out / "manifest.json").read_text())
  layout = manifest["dataset"]["layout"]
  assert layout["kind"] == "dicom" and layout["value_range"][0] >= 1000
  bound = round(manifest["linf_bound_uint8"] * layout["stored_units_per_level"])
  assert 0 < layout["measured_linf_stored"]["train"] <= bound
  changed = 0
  for name, _, split in rows:
    a, b = pydicom.dcmread(out / "ct" / name), pydicom.dcmread(src / name)
    assert _tags_except_pixels(a) == _tags_except_pixels(b)
    assert a.file_meta.TransferSyntaxUID == b.file_meta.TransferSyntaxUID
    diff = np.abs(a.pixel_array.astype(int) - b.pixel_array.astype(int))
    assert diff.max() <= bound and a.pixel_array.max() < 4096  # 12 bits stored
    if split == "train":
      changed += diff.any()
    else:
      assert (out / "ct" / name).read_bytes() == (src / name).read_bytes()
  assert changed > 0
  back, _ = protected.read_protected(str(out))
  assert back.layout["value_range"] == layout["value_range"]
  assert (tmp_path / "run" / "report" / "index.html").exists()


@pytest.mark.parametrize("example", ["ct", "rgb_color"])
def test_real_files_keep_their_tags_and_read_back(tmp_path, example):
  """pydicom's own example files: signed 16-bit CT, 8-bit RGB (interleaved)."""
  src_ds = getattr(examples, example)
  src = tmp_path / "in.dcm"
  src_ds.save_as(src)
  _, pixels = dicom.read(str(src))
  vrange = dicom.value_range([pixels])
  noise = np.zeros(pixels.shape, np.int16)
  noise[::3, ::5] = 3
  noise[1::4, ::7] = -3
  delta = dicom.write_with_noise(str(src), str(tmp_path / "out.dcm"), noise, vrange)
  back = pydicom.dcmread(tmp_path / "out.dcm")
  assert _tags_except_pixels(back) == _tags_except_pixels(pydicom.dcmread(src))
  np.testing.assert_array_equal(back.pixel_array.astype(int) - pixels.astype(int), delta)
  step = round(3 * dicom.scale(vrange))
  assert np.abs(delta).max() == step and (delta[noise == 0] == 0).all()


def test_8bit_dicom_view_is_the_stored_value(tmp_path):
  pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
  folders.dicom_file(tmp_path / "a.dcm", pixels)
  _, stored = dicom.read(str(tmp_path / "a.dcm"))
  vrange = dicom.value_range([stored])
  assert vrange == (0, 255)
  np.testing.assert_array_equal(dicom.to_view(stored, vrange), pixels)


def test_compressed_transfer_syntax_is_refused_naming_the_row(tmp_path):
  src = tmp_path / "f"
  folders.dicom_folder(src, sizes={"train": 2, "val": 1, "test": 1})
  shutil.copyfile(examples.get_path("jpeg2k"), src / "scan_001.dcm")
  with pytest.raises(ValueError, match=r"row 3 \(scan_001.dcm\): transfer syntax JPEG 2000"):
    loading.load_dataset(str(src))


def test_mixed_dicom_headers_and_kinds_are_refused(tmp_path):
  src = tmp_path / "f"
  folders.dicom_folder(src, sizes={"train": 2, "val": 1, "test": 1})
  folders.dicom_file(src / "scan_002.dcm", np.zeros((16, 16), np.int16))
  with pytest.raises(ValueError, match=r"row 4 \(scan_002.dcm\) is 16x16 MONOCHROME2 int16"):
    loading.load_dataset(str(src))
  os.remove(src / "scan_002.dcm")
  (src / "scan_002.dcm").write_bytes(b"\0" * 200)
  with pytest.raises(ValueError, match=r"row 4 \(scan_002.dcm\): cannot read as DICOM"):
    loading.load_dataset(str(src))
  folders.write_csv(src, [["scan_000.dcm", 0, "train"], ["x.png", 1, "val"]])
  (src / "x.png").write_bytes(b"png?")
  with pytest.raises(ValueError, match=r"row 3 \(x.png\) is image, but row 2"):
    loading.load_dataset(str(src))


@pytest.mark.parametrize("planar", [0, 1])
def test_rgb_planar_layouts_and_odd_length_8bit_data(tmp_path, planar):
  rgb = np.random.default_rng(0).integers(0, 250, (15, 15, 3)).astype(np.uint8)
  folders.dicom_file(tmp_path / "a.dcm", rgb)
  ds = pydicom.dcmread(tmp_path / "a.dcm")
  ds.PlanarConfiguration = planar
  raw = rgb.transpose(2, 0, 1) if planar else rgb
  ds.PixelData = raw.tobytes() + b"\0"  # 675 bytes, padded to even length
  ds.save_as(tmp_path / "a.dcm")
  _, pixels = dicom.read(str(tmp_path / "a.dcm"))
  np.testing.assert_array_equal(pixels, rgb)
  noise = np.zeros(rgb.shape, np.int16)
  noise[::2, ::3, 1] = 4
  dicom.write_with_noise(str(tmp_path / "a.dcm"), str(tmp_path / "b.dcm"), noise, (0, 255))
  back = pydicom.dcmread(tmp_path / "b.dcm")
  assert back.PlanarConfiguration == planar and len(back.PixelData) % 2 == 0
  np.testing.assert_array_equal(back.pixel_array.astype(int), rgb.astype(int) + noise)
