"""Class-wise patterns on the flattest pixels (`noise.method='flat'`)."""
import json

import numpy as np
import pytest

from configs import flat as flat_config
from salm_jax import pipeline
from salm_jax import tasks
from salm_jax.data import protected as protected_lib
from salm_jax.noise import methods
from salm_jax.noise.salm import masks
from salm_jax.noise.textures import flat_support

BINARY, MULTI = tasks.BINARY, tasks.MULTI_CLASS


def _config(pattern="antipodal", **noise):
  config = flat_config.get_config("synthetic,tiny")
  config.noise.update({"mask_ratio": 0.25, **noise})
  config.noise.flat.pattern = pattern
  return config


def _toy(n=40, size=8, channels=1, classes=2, seed=0):
  """Textured images with a flat 2×8 band at the top, labels cycling (class 1 the largest)."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(0.2, 0.8, (n, size, size, channels)).astype(np.float32)
  images[:, :2] = 0.5
  labels = (np.arange(n) % classes)[:, None].astype(np.int64)
  labels[:3] = 1
  return images, labels


def test_support_is_the_flattest_pixels():
  images, _ = _toy()
  support = flat_support.flat_support(images, 0.25)
  assert support.sum() == 16 and support[:2].all()  # the flat band, and nothing else


@pytest.mark.parametrize("channels", [1, 3])
def test_antipodal_classes_are_negatives_on_one_support(channels):
  images, labels = _toy(channels=channels)
  result = methods.generate_noise(_config(), images, labels, task=BINARY, num_classes=2)
  c0, c1 = result.delta[labels[:, 0] == 0], result.delta[labels[:, 0] == 1]
  np.testing.assert_array_equal(c0, np.broadcast_to(c0[0], c0.shape))
  np.testing.assert_allclose(c1[0], -c0[0], atol=1e-7)
  assert (result.masks.sum((1, 2)) == 16).all() and result.masks[:, :2].all()
  np.testing.assert_allclose(np.abs(result.delta[result.masks]), 8 / 255, rtol=1e-5)
  assert not result.delta[~result.masks].any()


def test_onesided_leaves_the_largest_class_clean():
  images, labels = _toy()
  result = methods.generate_noise(_config("onesided"), images, labels, task=BINARY,
                                  num_classes=2)
  largest = labels[:, 0] == 1
  assert not result.delta[largest].any() and not result.masks[largest].any()
  assert (result.masks[~largest].sum((1, 2)) == 16).all()
  assert result.details["flat"]["classes_without_noise"] == [1]


def test_pipeline_writes_at_most_k_pixels_per_image_and_reports(tmp_path):
  config = _config("independent", mask_ratio=0.1)
  summary = pipeline.run_all(config, str(tmp_path), progress=False)
  assert summary["victims"] and (tmp_path / "report" / "index.html").exists()
  manifest = json.loads((tmp_path / "protected" / "manifest.json").read_text())
  assert manifest["method"] == "flat" and manifest["surrogate"] is None
  noise = protected_lib.read_noise(str(tmp_path / "protected"))["train"]["noise"]
  changed = noise != 0
  assert (changed.sum((1, 2)) <= masks.num_kept(0.1, 28 * 28)).all() and changed.any()
  assert np.abs(noise).max() == 8


def test_bad_settings_are_refused():
  images, labels = _toy(classes=3)
  with pytest.raises(ValueError, match="needs two classes"):
    methods.generate_noise(_config(), images, labels, task=MULTI, num_classes=3)
  for field, value in (("pattern", "stripes"), ("window", 4)):
    config = _config()
    config.noise.flat[field] = value
    with pytest.raises(ValueError, match=f"noise.flat.{field}"):
      methods.check_settings(config)
