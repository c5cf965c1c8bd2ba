"""Class-wise sparse textures on a lattice (`noise.method='lattice'`)."""
import json
import logging

import jax
import numpy as np
import pytest

from configs import lattice as lattice_config
from salm_jax import pipeline
from salm_jax import tasks
from salm_jax.data import protected as protected_lib
from salm_jax.noise import lattice
from salm_jax.noise import methods

BINARY, MULTI = tasks.BINARY, tasks.MULTI_CLASS


def _config(pattern="onesided", **fields):
  config = lattice_config.get_config("synthetic,tiny")
  config.noise.mask_ratio = 0.1
  config.noise.lattice.update({"pattern": pattern, **fields})
  return config


def _toy(n=30, size=12, channels=1, classes=2, seed=0):
  """Mid-gray images (no clipping), labels cycling, the last class the largest."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(0.3, 0.7, (n, size, size, channels)).astype(np.float32)
  labels = (np.arange(n) % classes)[:, None].astype(np.int64)
  labels[:3] = classes - 1
  return images, labels


def test_support_is_one_block_per_cell():
  support = lattice.lattice_support(12, 12, 4)
  assert support.sum() == 9
  assert all(support[r, c] for r in (2, 6, 10) for c in (2, 6, 10))
  blocks = lattice.lattice_support(16, 16, 8, dot=2)
  assert blocks.sum() == 16 and blocks[3:5, 3:5].all() and blocks[11:13, 11:13].all()


def test_onesided_gives_the_minority_bright_dots_and_the_largest_class_nothing():
  images, labels = _toy()
  result = methods.generate_noise(_config(), images, labels, task=BINARY, num_classes=2)
  minority = labels[:, 0] == 0
  assert not result.delta[~minority].any() and not result.masks[~minority].any()
  support = lattice.lattice_support(12, 12, 4)
  assert (result.masks[minority] == support).all()
  np.testing.assert_allclose(result.delta[minority][:, support], 8 / 255, rtol=1e-5)
  assert not result.delta[minority][:, ~support].any()
  assert result.details["lattice"]["classes_without_noise"] == [1]


@pytest.mark.parametrize("channels", [1, 3])
def test_antipodal_textures_are_negatives_and_stationary(channels):
  images, labels = _toy(channels=channels)
  config = _config("antipodal", tile=2)
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  c0, c1 = result.delta[labels[:, 0] == 0], result.delta[labels[:, 0] == 1]
  np.testing.assert_allclose(c0, np.broadcast_to(c0[0], c0.shape), atol=1e-6)
  np.testing.assert_allclose(c1[0], -c0[0], atol=1e-6)
  # The texture repeats every period·tile pixels: it is the same tile everywhere.
  np.testing.assert_allclose(c0[0, :4], c0[0, 8:12], atol=1e-6)
  np.testing.assert_allclose(c0[0, :, :4], c0[0, :, 8:12], atol=1e-6)


def test_class_tiles_differ_by_more_than_a_shift():
  counts = np.array([5, 5, 5, 9])
  tiles = lattice.class_tiles(jax.random.PRNGKey(0), "onesided", counts, 2, 1)
  assert not tiles[3].any()
  for i in range(3):
    for j in range(i):
      assert not any(np.array_equal(s, tiles[j]) for s in lattice._shifts(tiles[i]))
  with pytest.raises(ValueError, match="Raise noise.lattice.tile"):  # 3 textures, 2 gray dots
    lattice.class_tiles(jax.random.PRNGKey(0), "onesided", counts, 1, 1)


def test_dots_that_would_leave_the_range_are_clipped_not_flipped():
  images, labels = _toy()
  images[:] = 0.0
  result = methods.generate_noise(_config("antipodal"), images, labels, task=BINARY,
                                  num_classes=2)
  assert (result.delta >= 0).all()  # the dark class's dots vanish on black, none turns bright
  assert result.delta[labels[:, 0] == 0].any()


def test_pipeline_writes_at_most_the_lattice_and_reports(tmp_path, caplog):
  config = _config("antipodal")
  with caplog.at_level(logging.INFO):
    summary = pipeline.run_all(config, str(tmp_path), progress=False)
  said = [r.getMessage() for r in caplog.records]  # a bad format argument raises here
  assert any("noise method 'lattice', model-free" in line for line in said)
  assert summary["victims"] and (tmp_path / "report" / "index.html").exists()
  manifest = json.loads((tmp_path / "protected" / "manifest.json").read_text())
  assert manifest["method"] == "lattice" and manifest["surrogate"] is None
  noise = protected_lib.read_noise(str(tmp_path / "protected"))["train"]["noise"]
  changed = (noise.reshape(len(noise), 28, 28, -1) != 0).any(-1)
  support = lattice.lattice_support(28, 28, 4)
  assert changed.any() and not changed[:, ~support].any()
  assert (changed.sum((1, 2)) <= int(np.ceil(0.1 * 28 * 28))).all()
  assert np.abs(noise).max() == 8


@pytest.mark.parametrize("field,value,match", [
    ("pattern", "stripes", "noise.lattice.pattern"),
    ("period", 1, "noise.lattice.period"),
    ("period", 3, "more than noise.mask_ratio"),
    ("tile", 0, "noise.lattice.tile"),
    ("dot", 4, "smaller than noise.lattice.period"),
])
def test_bad_settings_are_refused(field, value, match):
  config = _config()
  config.noise.lattice[field] = value
  with pytest.raises(ValueError, match=match):
    methods.check_settings(config)


def test_antipodal_needs_two_classes_and_the_tile_must_fit():
  images, labels = _toy(classes=3)
  with pytest.raises(ValueError, match="needs two classes"):
    methods.generate_noise(_config("antipodal"), images, labels, task=MULTI, num_classes=3)
  images, labels = _toy()
  with pytest.raises(ValueError, match="does not fit"):
    methods.generate_noise(_config(tile=4), images, labels, task=BINARY, num_classes=2)
