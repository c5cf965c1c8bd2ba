"""load_dataset on the real files, on custom npz, and every bad-file error."""
import numpy as np
import pytest

from salm_jax import tasks
from salm_jax.data import info
from salm_jax.data import loading


@pytest.mark.parametrize("flag,size", [("breastmnist", 28), ("breastmnist", 64),
                                       ("pneumoniamnist", 28)])
def test_shared_files_load_with_info_split_sizes(medmnist_dir, flag, size):
  ds = loading.load_dataset(flag, size=size, data_dir=str(medmnist_dir), download=False)
  assert {s: len(ds.splits[s]) for s in ds.splits} == info.INFO[flag]["n_samples"]
  assert ds.task == tasks.BINARY and ds.num_classes == 2
  assert ds.image_size == size and ds.channels == 1
  assert ds.train.images.dtype == np.uint8 and ds.train.labels.shape[1] == 1
  assert ds.source_md5 == info.md5(flag, size)


def test_config_path_loads_the_same(medmnist_dir):
  cfg = loading.default_config()
  assert cfg.name == "phantom" and cfg.data_dir == "~/.medmnist" and cfg.size == 28
  cfg.name, cfg.data_dir, cfg.download = "breastmnist", str(medmnist_dir), False
  ds = loading.load_from_config(cfg)
  np.testing.assert_array_equal(ds.test.images, np.load(medmnist_dir / "breastmnist.npz")[
      "test_images"])


def _arrays(n=(8, 3, 4), shape=(28, 28), labels=None, dtype=np.uint8):
  rng = np.random.default_rng(0)
  out = {}
  for split, k in zip(("train", "val", "test"), n):
    out[f"{split}_images"] = rng.integers(0, 256, (k,) + shape).astype(dtype)
    out[f"{split}_labels"] = (rng.integers(0, 2, (k, 1), dtype=np.uint8) if labels is None
                              else labels(rng, k))
  return out


def _save(tmp_path, arrays, name="mine.npz"):
  path = tmp_path / name
  np.savez(path, **arrays)
  return str(path)


def test_custom_npz_infers_task(tmp_path):
  ds = loading.load_dataset(_save(tmp_path, _arrays()))
  assert (ds.name, ds.task, ds.num_classes) == ("mine", tasks.BINARY, 2)
  five = _arrays(shape=(28, 28, 3), labels=lambda r, k: np.arange(k)[:, None] % 5)
  ds = loading.load_dataset(_save(tmp_path, five, "five.npz"))
  assert (ds.task, ds.num_classes, ds.channels) == (tasks.MULTI_CLASS, 5, 3)
  multi = _arrays(labels=lambda r, k: r.integers(0, 2, (k, 14), dtype=np.uint8))
  ds = loading.load_dataset(_save(tmp_path, multi, "multi.npz"))
  assert (ds.task, ds.num_classes) == (tasks.MULTI_LABEL, 14)
  ds = loading.load_dataset(_save(tmp_path, five, "five.npz"), task=tasks.ORDINAL,
                            num_classes=7)
  assert (ds.task, ds.num_classes) == (tasks.ORDINAL, 7)


def _bad(key, value):
  arrays = _arrays()
  if value is None:
    del arrays[key]
  else:
    arrays[key] = value
  return arrays


@pytest.mark.parametrize("arrays,message", [
    (_bad("val_labels", None), "missing keys.*val_labels"),
    (_bad("train_images", np.zeros((8, 28, 28), np.float32)), "train_images has dtype float32"),
    (_bad("train_labels", np.zeros((8, 1), np.float32)), "train_labels has dtype float32"),
    (_bad("train_labels", np.full((8, 1), np.nan)), "train_labels contains NaN"),
    (_bad("test_images", np.zeros((5, 28, 28), np.uint8)), "test has 5 images but 4 labels"),
    (_bad("val_images", np.zeros((3, 32, 32), np.uint8)), "image sizes differ"),
    (_bad("val_images", np.zeros((3, 28), np.uint8)), "val_images has shape"),
    (_bad("train_labels", np.zeros((8,), np.uint8)), r"label shapes mix flat \(N,\) and"),
    (_bad("train_labels", np.zeros((8, 1, 1), np.uint8)), r"expected \(N, L\), or \(N,\)"),
])
def test_bad_custom_files_give_clear_errors(tmp_path, arrays, message):
  path = _save(tmp_path, arrays)
  with pytest.raises(ValueError, match=message) as e:
    loading.load_dataset(path)
  assert path in str(e.value)


def test_labels_out_of_range_for_known_task(tmp_path, medmnist_dir):
  arrays = _arrays()
  arrays["val_labels"][1, 0] = 3
  path = _save(tmp_path, arrays, "breastmnist.npz")
  with pytest.warns(UserWarning, match="MD5"), pytest.raises(
      ValueError, match=r"val_labels\[1\] = \[3\] out of range"):
    loading.load_dataset("breastmnist", data_dir=str(tmp_path), download=False)
  with pytest.raises(ValueError, match="out of range"):
    loading.load_dataset(path, task=tasks.BINARY, num_classes=2)
  arrays = _arrays(labels=lambda r, k: r.integers(0, 2, (k, 3), dtype=np.uint8))
  arrays["test_labels"][2, 1] = 2
  with pytest.raises(ValueError, match="out of range; expected 0 or 1"):
    loading.load_dataset(_save(tmp_path, arrays, "ml.npz"))


def test_corrupt_and_non_npz_files(tmp_path):
  good = _save(tmp_path, _arrays(), "good.npz")
  corrupt = tmp_path / "corrupt.npz"
  corrupt.write_bytes(open(good, "rb").read()[:500])
  with pytest.raises(ValueError, match="corrupt.npz: cannot read as a MedMNIST npz"):
    loading.load_dataset(str(corrupt))
  single = tmp_path / "single.npz"
  with open(single, "wb") as f:
    np.save(f, np.zeros(3))
  with pytest.raises(ValueError, match="single.npz"):
    loading.load_dataset(str(single))
  with pytest.raises(ValueError, match="file not found"):
    loading.load_dataset(str(tmp_path / "nope.npz"))


def test_wrong_size_medmnist_file_is_rejected(tmp_path):
  _save(tmp_path, _arrays(), "breastmnist_64.npz")
  with pytest.warns(UserWarning, match="MD5"), pytest.raises(ValueError, match="64x64"):
    loading.load_dataset("breastmnist", size=64, data_dir=str(tmp_path), download=False)


def test_unknown_name_lists_choices():
  with pytest.raises(ValueError, match="breastmnist.*phantom"):
    loading.load_dataset("mnist")
