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
from salm_jax.evaluation import utility
from salm_jax.noise import methods
from salm_jax.noise.salm import masks
from salm_jax.noise.textures import lattice

BINARY, MULTI = tasks.BINARY, tasks.MULTI_CLASS


def _config(pattern="onesided", **fields):
  """configs/lattice.py at ε = 8/255 with the block's defaults (bare='largest', no floor)."""
  config = lattice_config.get_config("synthetic,tiny")
  config.noise.update({"mask_ratio": 0.1, "epsilon": 8 / 255})
  config.noise.lattice = lattice.default_config()
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
  assert sorted(result.details["lattice"]) == [
      "bare", "class_contrast", "classes_without_noise", "dot", "images_left_clean",
      "images_lowered", "min_ssim", "pattern", "period", "support_pixels", "tile"]


def test_bare_smallest_puts_the_texture_on_the_majority():
  images, labels = _toy(classes=3)  # class 2 the largest, class 0 the smallest (first tie)
  result = methods.generate_noise(_config(bare="smallest"), images, labels, task=MULTI,
                                  num_classes=3)
  classes = labels[:, 0]
  assert not result.delta[classes == 0].any()
  assert result.masks[classes == 2].all(0).any() and result.masks[classes == 1].any()
  assert result.details["lattice"]["classes_without_noise"] == [0]
  assert result.details["lattice"]["bare"] == "smallest"
  # Two textured classes still get textures that differ by more than a shift.
  t1, t2 = result.delta[classes == 1][0], result.delta[classes == 2][0]
  assert not np.array_equal(np.sign(t1), np.sign(t2))


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


def _flat_and_busy(n=12, size=16):
  """Half the images flat (a dot there costs SSIM), half textured; two classes."""
  rng = np.random.default_rng(0)
  images = np.full((n, size, size, 1), 40 / 255, np.float32)
  images[n // 2:] = rng.integers(60, 200, (n - n // 2, size, size, 1)) / 255
  labels = (np.arange(n) % 2)[:, None].astype(np.int64)
  return images, labels


def test_an_ssim_floor_lowers_only_the_images_that_need_it_in_whole_levels():
  images, labels = _flat_and_busy()
  config = _config(period=4, min_ssim=0.9)
  config.noise.epsilon = 24 / 255
  config_free = _config(period=4)
  config_free.noise.epsilon = 24 / 255
  free = methods.generate_noise(config_free, images, labels, task=BINARY, num_classes=2)
  held = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  clean = np.round(images * 255).astype(np.uint8)
  written = np.round((images + held.delta) * 255).astype(np.uint8)
  stats = utility.per_image_stats(clean, written)
  assert (stats["ssim"] >= 0.9).all()
  levels = np.abs(np.round(held.delta * 255))
  assert np.allclose(levels, np.round(levels)) and levels.max() == 24
  # Same positions and signs as without the floor, amplitude only lowered on flat images.
  assert (np.sign(held.delta) == np.sign(free.delta))[held.masks].all()
  assert not (held.masks & ~free.masks).any()
  lowered = held.details["lattice"]["images_lowered"]
  assert 0 < lowered <= 3 and held.details["lattice"]["min_ssim"] == 0.9
  busy = np.arange(12) >= 6
  np.testing.assert_array_equal(held.delta[busy], free.delta[busy])


def test_the_floor_off_is_the_pattern_as_before_and_bad_floors_are_refused():
  images, labels = _flat_and_busy()
  a = methods.generate_noise(_config(), images, labels, task=BINARY, num_classes=2)
  b = methods.generate_noise(_config(min_ssim=0.0), images, labels, task=BINARY, num_classes=2)
  np.testing.assert_array_equal(a.delta, b.delta)
  for bad in (1.0, -0.1, 1.5):  # (ConfigDict itself refuses a string for a float field)
    with pytest.raises(ValueError, match="noise.lattice.min_ssim"):
      methods.check_settings(_config(min_ssim=bad))


def test_pipeline_writes_at_most_the_lattice_and_reports(tmp_path, caplog):
  config = _config("antipodal", min_ssim=0.97)
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
  assert (changed.sum((1, 2)) <= masks.num_kept(0.1, 28 * 28)).all()
  assert np.abs(noise).max() == 8
  # The floor holds on the written file, image by image, as the manifest measured it.
  assert manifest["split_stats"]["train"]["ssim_min"] >= 0.97
  assert manifest["lattice"]["min_ssim"] == 0.97


@pytest.mark.parametrize("field,value,match", [
    ("pattern", "stripes", "noise.lattice.pattern"),
    ("period", 1, "noise.lattice.period"),
    ("tile", 0, "noise.lattice.tile"),
    ("bare", "median", "noise.lattice.bare"),
    ("skew", 3, "noise.lattice has no field skew"),
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


def test_a_period_that_does_not_divide_the_image_must_fit_the_ratio():
  # 14 px, period 5: offsets 2, 7, 12 -> 3 × 3 = 9 dots (4.6 %), more than 4 % allows (7 px).
  images, labels = _toy(size=14)
  config = _config(period=5)
  config.noise.mask_ratio = 0.04
  with pytest.raises(ValueError, match="puts 9 dot pixels"):
    methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  config.noise.mask_ratio, config.noise.lattice.period = 0.1, 3  # 16 of 144 px on 12 px
  with pytest.raises(ValueError, match="more than noise.mask_ratio=0.1"):
    methods.generate_noise(config, *_toy(), task=BINARY, num_classes=2)
  config.noise.lattice.period = 5
  config.noise.mask_ratio = 9 / 196
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  assert result.masks.sum((1, 2)).max() == 9


def test_bare_busiest_leaves_the_class_with_the_most_fine_structure_clean():
  """Class 0 speckled, class 1 smooth: the texture goes on class 1, whichever is larger."""
  rng = np.random.default_rng(0)
  labels = (np.arange(30) % 2)[:, None].astype(np.int64)
  labels[:4] = 1  # class 1 the largest: 'largest' would leave it bare
  images = np.full((30, 12, 12, 1), 0.5, np.float32)
  speckled = labels[:, 0] == 0
  images[speckled] += rng.uniform(-0.2, 0.2, (int(speckled.sum()), 12, 12, 1)).astype(np.float32)
  result = methods.generate_noise(_config(bare="busiest"), images, labels, task=BINARY,
                                  num_classes=2)
  details = result.details["lattice"]
  assert details["classes_without_noise"] == [0] and details["bare"] == "busiest"
  assert details["class_contrast"][0] > details["class_contrast"][1] == 0.0
  assert not result.delta[speckled].any() and result.masks[~speckled].all(0).any()
