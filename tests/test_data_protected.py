"""quantize's L∞ promise, and a protected dataset's round trip through disk."""
import json
import os

import numpy as np
import pytest

from salm_jax.data import loading
from salm_jax.data import protected
from salm_jax.data.dataset import as_float, to_float


def test_to_float_converts_uint8_and_keeps_float():
  images = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
  np.testing.assert_array_equal(to_float(images), as_float(images))
  floats = as_float(images).astype(np.float64)
  out = to_float(floats)
  assert out.dtype == np.float32 and out.shape == floats.shape
  np.testing.assert_array_equal(out, floats.astype(np.float32))


@pytest.mark.parametrize("epsilon", [2 / 255, 8 / 255, 0.05, 16 / 255])
@pytest.mark.parametrize("shape", [(16, 12, 12), (16, 12, 12, 3)])
def test_quantize_keeps_linf_bound(epsilon, shape):
  rng = np.random.default_rng(1)
  clean = rng.integers(0, 256, shape, dtype=np.uint8)
  clean[:2] = 0
  clean[2:4] = 255
  nhwc = shape + (1,) if len(shape) == 3 else shape
  # Noise over the budget, at the budget, and just under it: the output must obey the bound.
  delta = rng.uniform(-3 * epsilon, 3 * epsilon, nhwc)
  delta[4:8] = np.sign(delta[4:8]) * epsilon
  out = protected.quantize(clean, delta, epsilon)
  assert out.dtype == np.uint8 and out.shape == shape
  diff = np.abs(out.astype(int) - clean.astype(int))
  assert diff.max() <= round(255 * epsilon)
  assert diff.max() == round(255 * epsilon)  # The budget is used, not shrunk.
  # Within the budget, quantize is plain rounding of clean + delta.
  small = rng.uniform(-epsilon / 2, epsilon / 2, nhwc)
  expected = np.clip(np.rint(as_float(clean) * 255 + small * 255), 0, 255).reshape(shape)
  np.testing.assert_array_equal(protected.quantize(clean, small, epsilon), expected)


def test_quantize_rejects_bad_input():
  clean = np.zeros((2, 4, 4), np.uint8)
  with pytest.raises(ValueError, match="delta shape"):
    protected.quantize(clean, np.zeros((2, 4, 4)), 0.1)
  with pytest.raises(ValueError, match="NaN"):
    protected.quantize(clean, np.full((2, 4, 4, 1), np.nan), 0.1)
  with pytest.raises(ValueError, match="uint8"):
    protected.quantize(clean.astype(np.float32), np.zeros((2, 4, 4, 1)), 0.1)


def _protect(ds, epsilon, seed=0):
  rng = np.random.default_rng(seed)
  clean = ds.train.images
  mask = rng.random(clean.shape[:3]) < 0.1
  nhwc = as_float(clean).shape
  delta = rng.uniform(-epsilon, epsilon, nhwc) * mask[..., None]
  return protected.quantize(clean, delta, epsilon), mask


def _write(out_dir, ds, **kwargs):
  eps = 8 / 255
  images, mask = _protect(ds, eps)
  config = {"noise": {"epsilon": eps, "mask_ratio": 0.1, "seed": 3},
            "surrogate": {"model": "small_cnn"}}
  stats = {"train": {"linf": 8, "changed": 0.09, "psnr": 40.1, "ssim": 0.98}}
  return images, mask, protected.write_protected(
      str(out_dir), ds, {"train": images}, {"train": mask}, config=config,
      split_stats=stats, **kwargs)


def test_round_trip_on_breastmnist(medmnist_dir, tmp_path):
  ds = loading.load_dataset("breastmnist", data_dir=str(medmnist_dir), download=False)
  images, mask, manifest = _write(tmp_path, ds)
  assert sorted(os.listdir(tmp_path)) == ["breastmnist.npz", "manifest.json", "noise.npz"]
  with np.load(tmp_path / "breastmnist.npz") as z:  # What medmnist's loaders do.
    assert sorted(z.files) == sorted(f"{s}_{k}" for s in ("train", "val", "test")
                                     for k in ("images", "labels"))
    np.testing.assert_array_equal(z["train_images"], images)
    assert z["train_images"].dtype == np.uint8
    for s in ("val", "test"):
      np.testing.assert_array_equal(z[f"{s}_images"], ds.splits[s].images)
    for s in ("train", "val", "test"):
      assert z[f"{s}_labels"].dtype == ds.splits[s].labels.dtype
      np.testing.assert_array_equal(z[f"{s}_labels"], ds.splits[s].labels)
  assert (manifest["epsilon"], manifest["mask_ratio"], manifest["seed"]) == (8 / 255, 0.1, 3)
  assert manifest["surrogate"] == {"model": "small_cnn"}
  assert manifest["linf_bound_uint8"] == 8
  assert manifest["dataset"]["source_md5"] == "750601b1f35ba3300ea97c75c52ff8f6"
  assert manifest["split_stats"]["train"]["psnr"] == 40.1
  assert json.loads((tmp_path / "manifest.json").read_text()) == manifest

  back, manifest2 = protected.read_protected(str(tmp_path))
  assert manifest2 == manifest and back.task == ds.task and back.name == "breastmnist"
  np.testing.assert_array_equal(back.train.images, images)
  noise = protected.read_noise(str(tmp_path))
  assert set(noise) == {"train"}
  assert noise["train"]["noise"].dtype == np.int8
  np.testing.assert_array_equal(noise["train"]["mask"], mask)
  np.testing.assert_array_equal(ds.train.images.astype(int) + noise["train"]["noise"], images)


def test_tampered_or_incomplete_output_is_refused(tmp_path):
  ds = loading.load_dataset("phantom", phantom={"n_train": 16, "n_val": 4, "n_test": 4})
  _write(tmp_path, ds)
  with pytest.raises(FileExistsError):
    _write(tmp_path, ds)
  _write(tmp_path, ds, overwrite=True)
  with np.load(tmp_path / "phantom.npz") as z:
    arrays = {k: z[k] for k in z.files}
  arrays["test_images"][0, 0, 0] ^= 1
  np.savez_compressed(tmp_path / "phantom.npz", **arrays)
  with pytest.raises(ValueError, match="phantom.npz: MD5 .* does not match"):
    protected.read_protected(str(tmp_path))
  os.remove(tmp_path / "noise.npz")
  with pytest.raises(ValueError, match="noise.npz, which is missing"):
    protected.read_protected(str(tmp_path))
  os.remove(tmp_path / "manifest.json")
  with pytest.raises(ValueError, match="no manifest.json"):
    protected.read_protected(str(tmp_path))


def test_write_refuses_noise_over_budget(tmp_path):
  ds = loading.load_dataset("phantom", phantom={"n_train": 8, "n_val": 2, "n_test": 2})
  images = ds.train.images.copy()
  images[0, 0, 0] = 200 if images[0, 0, 0] < 100 else 0
  mask = np.zeros(images.shape, bool)
  with pytest.raises(ValueError, match="over the bound 8"):
    protected.write_protected(str(tmp_path), ds, {"train": images}, {"train": mask},
                              config={"epsilon": 8 / 255}, split_stats={})
  assert not os.path.exists(tmp_path / "manifest.json")


def test_medmnist_loader_reads_protected_file(medmnist_dir, tmp_path):
  medmnist = pytest.importorskip("medmnist")
  ds = loading.load_dataset("breastmnist", size=64, data_dir=str(medmnist_dir), download=False)
  images, _, _ = _write(tmp_path, ds)
  assert os.path.exists(tmp_path / "breastmnist_64.npz")
  train = medmnist.BreastMNIST(split="train", root=str(tmp_path), size=64)
  image, label = train[5]
  np.testing.assert_array_equal(np.asarray(image), images[5])
  assert int(label[0]) == int(ds.train.labels[5, 0])


def test_quantize_a_chunk_at_a_time_equals_the_whole_array_formula():
  """Past 4 Mi pixel values quantize works in chunks; the file is the same."""
  rng = np.random.default_rng(0)
  clean = rng.integers(0, 256, (1100, 64, 64), dtype=np.uint8)
  delta = rng.uniform(-0.05, 0.05, clean.shape + (1,)).astype(np.float32)
  assert protected.rows_per_chunk(delta.shape) < len(clean)
  base = clean[..., None].astype(np.int16)
  whole = np.clip(np.rint(base + 255.0 * delta.astype(np.float64)), np.maximum(base - 8, 0),
                  np.minimum(base + 8, 255)).astype(np.uint8)[..., 0]
  np.testing.assert_array_equal(protected.quantize(clean, delta, 8 / 255), whole)
