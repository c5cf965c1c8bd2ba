"""A folder of PNG/JPEG images with labels.csv: loading, the pipeline, the output, the errors."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from configs import salm
from salm_jax import pipeline, protect, tasks
from salm_jax.data import folder, labels_csv, loading, protected
from tests.helpers import folders

SPLITS = ("train", "val", "test")


def _files(root):
  return sorted(os.path.relpath(os.path.join(d, f), root)
                for d, _, fs in os.walk(root) for f in fs)


def test_png_folder_through_protect_evaluate_report(tmp_path):
  src = tmp_path / "scans"
  rows = folders.image_folder(src)
  cfg = salm.get_config("synthetic,tiny")
  cfg.dataset.name = str(src)
  summary = pipeline.run_all(cfg, str(tmp_path / "run"), progress=False)
  out = tmp_path / "run" / "protected"
  assert sorted(os.listdir(out)) == ["manifest.json", "noise.npz", "scans"]
  assert _files(out / "scans") == _files(src)  # same names, same subfolders
  assert (out / "scans" / "labels.csv").read_bytes() == (src / "labels.csv").read_bytes()
  changed = 0
  for name, _, split in rows:
    with Image.open(out / "scans" / name) as a, Image.open(src / name) as b:
      assert (a.format, a.mode, a.size) == (b.format, b.mode, b.size) == ("PNG", "L", (16, 16))
      diff = np.abs(np.asarray(a, int) - np.asarray(b, int))
    if split == "train":
      assert diff.max() <= round(255 * cfg.noise.epsilon)
      changed += diff.any()
    else:  # unperturbed splits are copied byte for byte
      assert (out / "scans" / name).read_bytes() == (src / name).read_bytes()
  assert changed > 0
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["files"]["data"] == {"name": "scans", "kind": "folder",
                                       "md5": folder.folder_digest(str(out / "scans"))}
  assert manifest["dataset"]["layout"]["kind"] == "image"
  back, _ = protected.read_protected(str(out))
  assert back.layout["kind"] == "image" and back.train.images.shape == (48, 16, 16)
  results = json.loads((tmp_path / "run" / "evaluation" / "results.json").read_text())
  assert results["perturbed_splits"] == ["train"]
  assert summary["dataset"] == "scans"
  assert (tmp_path / "run" / "report" / "index.html").exists()


def _fake_protect(ds, out, epsilon=4 / 255, overwrite=False):
  """write_protected with random sparse noise on train: the writing path, without training."""
  clean = ds.train.images
  nhwc = clean.shape + (1,) if clean.ndim == 3 else clean.shape
  delta = np.random.default_rng(0).choice([-epsilon, 0, epsilon], nhwc, p=[0.1, 0.8, 0.1])
  images = {"train": protected.quantize(clean, delta, epsilon)}
  masks = {"train": np.abs(delta).max(-1) > 0}
  protected.write_protected(str(out), ds, images, masks, config={"epsilon": epsilon},
                            split_stats={}, overwrite=overwrite)
  return images["train"]


def test_jpeg_inputs_are_written_as_lossless_png(tmp_path):
  src = tmp_path / "derm"
  rows = folders.image_folder(src, fmt="JPEG", channels=3, split_column=False,
                              names=["benign", "malignant"])
  ds = loading.load_dataset(str(src))
  assert ds.label_names == {"0": "benign", "1": "malignant"} and ds.channels == 3
  prot = _fake_protect(ds, tmp_path / "out")
  out = tmp_path / "out" / "derm"
  train = set(ds.layout["files"]["train"])
  for name, _ in rows:
    if name in train:
      png = os.path.splitext(name)[0] + ".png"
      assert not (out / name).exists()
      with Image.open(out / png) as im:
        assert im.format == "PNG" and im.mode == "RGB"
    else:
      assert (out / name).read_bytes() == (src / name).read_bytes()
  written = labels_csv.read_rows(str(out))
  assert [r.label for r in written] == [r[1] for r in rows]
  assert {r.filename for r in written} == {os.path.splitext(r[0])[0] + ".png" if r[0] in train
                                           else r[0] for r in rows}
  back, manifest = protected.read_protected(str(tmp_path / "out"))
  np.testing.assert_array_equal(back.train.images, prot)  # lossless: exactly the protected pixels
  for s in SPLITS:
    np.testing.assert_array_equal(back.splits[s].labels, ds.splits[s].labels)
  assert manifest["dataset"]["layout"]["written_as_png"] == len(train)
  assert "JPEG" in manifest["dataset"]["layout"]["note"]


def test_split_without_column_is_seeded_70_10_20_and_follows_row_order(tmp_path):
  folders.image_folder(tmp_path / "a", split_column=False, sizes={"train": 100})
  rows = labels_csv.read_rows(str(tmp_path / "a"))
  splits, rule = labels_csv.assign_splits(str(tmp_path / "a"), rows)
  assert [splits.count(s) for s in SPLITS] == [70, 10, 20] and "default_rng(0)" in rule
  assert labels_csv.assign_splits(str(tmp_path / "a"), rows)[0] == splits
  small = [labels_csv.Row(i + 2, f"{i}.png", "0", None) for i in range(3)]
  assert sorted(labels_csv.assign_splits("x", small)[0]) == ["test", "train", "val"]


def test_csv_with_bom_other_columns_and_any_column_order(tmp_path):
  folders.image_folder(tmp_path / "f", sizes={"train": 2, "val": 1, "test": 1})
  table = (tmp_path / "f" / "labels.csv").read_text().splitlines()
  body = [l.split(",") for l in table[1:]]
  text = "\ufeffSplit,Patient,Label,Filename\n" + "".join(
      f"{s},p{i},{lab},{f}\n" for i, (f, lab, s) in enumerate(body))
  (tmp_path / "f" / "labels.csv").write_text(text, encoding="utf-8")
  ds = loading.load_dataset(str(tmp_path / "f"))
  assert [len(ds.splits[s]) for s in SPLITS] == [2, 1, 1]


@pytest.mark.parametrize("line, message", [
    ("img_001.png,1,train,extra", r"row 3 \(img_001.png\): 4 fields, but the header has 3"),
    ("img_001.png,1,training", r"row 3 \(img_001.png\): split 'training'"),
    ("img_001.png,,train", r"row 3 \(img_001.png\): empty label"),
    ("img_001.png,cyst,train", r"row 3 \(img_001.png\): label 'cyst' mixes integer and named"),
    ("img_001.png,-1,train", r"row 3 \(img_001.png\): label -1 is negative"),
    ("../img_001.png,1,train", r"row 3 \(../img_001.png\): the filename must be a path inside"),
    ("sub/img_000.png,1,train", r"row 3 \(sub/img_000.png\): the file is listed twice "
                                r"\(also row 2\)"),
    ("img_999.png,1,train", r"row 3 \(img_999.png\): file not found"),
])
def test_bad_csv_rows_name_the_row_and_file(tmp_path, line, message):
  src = tmp_path / "f"
  folders.image_folder(src)
  lines = (src / "labels.csv").read_text().splitlines()
  lines[2] = line
  (src / "labels.csv").write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=message) as e:
    loading.load_dataset(str(src))
  assert str(src / "labels.csv") in str(e.value)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"not an image at all"), "cannot read the image"),
    (lambda p: p.write_bytes(p.read_bytes()[:60]), "cannot read the image"),
    (lambda p: Image.new("RGBA", (16, 16)).save(p), "image mode RGBA"),
    (lambda p: Image.new("L", (16, 16)).save(p, format="BMP"), "BMP image"),
    (lambda p: Image.new("L", (20, 16)).save(p), r"is 20x16 gray, but .*row 2 "
                                                 r"\(sub/img_000.png\) is 16x16 gray"),
    (lambda p: Image.new("RGB", (16, 16)).save(p), "is 16x16 RGB, but"),
])
def test_unreadable_or_odd_images_name_the_row_and_file(tmp_path, damage, message):
  src = tmp_path / "f"
  folders.image_folder(src)
  damage(src / "img_003.png")
  with pytest.raises(ValueError, match=message) as e:
    loading.load_dataset(str(src))
  assert "row 5 (img_003.png)" in str(e.value)


def test_missing_csv_and_header(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no labels.csv"):
    loading.load_dataset(str(tmp_path / "empty"))
  folders.write_csv(tmp_path / "empty", [["a.png", "0"]], header=("file", "class"))
  with pytest.raises(ValueError, match=r"lacks column\(s\) \['filename', 'label'\]"):
    loading.load_dataset(str(tmp_path / "empty"))
  with pytest.raises(ValueError, match="no such folder"):
    loading.load_dataset(str(tmp_path / "nowhere"))


def test_bad_folder_leaves_no_protected_output(tmp_path):
  src = tmp_path / "f"
  folders.image_folder(src)
  (src / "img_003.png").write_bytes(b"broken")
  cfg = salm.get_config("synthetic,tiny")
  cfg.dataset.name = str(src)
  with pytest.raises(ValueError, match=r"row 5 \(img_003.png\)"):
    protect.protect(cfg, str(tmp_path / "run"), progress=False)
  out = tmp_path / "run" / "protected"
  assert not out.exists() or os.listdir(out) == []


def test_failure_while_writing_leaves_nothing_half_written(tmp_path):
  src = tmp_path / "f"
  folders.image_folder(src)
  ds = loading.load_dataset(str(src))
  _fake_protect(ds, tmp_path / "out")
  before = _files(tmp_path / "out")
  os.remove(src / ds.layout["files"]["test"][-1])  # the source changed under our feet
  with pytest.raises(FileNotFoundError):
    _fake_protect(ds, tmp_path / "out", overwrite=True)
  # The old data folder is intact, no temporary folder is left, and no manifest vouches for it.
  assert _files(tmp_path / "out") == [f for f in before if f != "manifest.json"]
  assert not [f for f in os.listdir(tmp_path / "out") if f.startswith(".tmp")]


def test_task_override_and_label_names(tmp_path):
  folders.image_folder(tmp_path / "f", names=["a_normal", "b_tumour"])
  ds = loading.load_dataset(str(tmp_path / "f"), task=tasks.MULTI_CLASS, num_classes=3)
  assert ds.label_names == {"0": "a_normal", "1": "b_tumour", "2": "2"}
  with pytest.raises(ValueError, match="multi-label task is not supported"):
    loading.load_dataset(str(tmp_path / "f"), task=tasks.MULTI_LABEL)
  with pytest.raises(ValueError, match="out of range"):
    loading.load_dataset(str(tmp_path / "f"), task=tasks.BINARY, num_classes=1)
