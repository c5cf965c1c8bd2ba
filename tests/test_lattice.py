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
from salm_jax.noise import lattice
from salm_jax.noise import methods
from salm_jax.noise import ssim_floor

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


def _half_flat(seed=0):
  """8 images of 16 px, each with a flat left half and a busy right half; two classes."""
  rng = np.random.default_rng(seed)
  images = np.full((8, 16, 16, 1), 100 / 255, np.float32)
  images[:, :, 8:] = rng.integers(40, 220, (8, 16, 8, 1)) / 255
  return images, (np.arange(8) % 2)[:, None].astype(np.int64)


def test_the_drop_floor_keeps_full_dots_and_drops_the_flattest_first():
  images, labels = _half_flat()
  config = _config(period=4, min_ssim=0.98, ssim_floor="drop")  # all dots: 0.95-0.96
  config.noise.epsilon = 30 / 255
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  clean = np.round(images * 255).astype(np.uint8)
  written = np.round((images + result.delta) * 255).astype(np.uint8)
  assert (utility.per_image_stats(clean, written)["ssim"] >= 0.98).all()
  kept = result.masks[labels[:, 0] == 1]
  assert kept.any()
  np.testing.assert_allclose(np.abs(result.delta[result.masks]), 30 / 255, atol=1e-6)
  support = lattice.lattice_support(16, 16, 4)
  dropped = support[None] & ~kept
  assert dropped.any() and not dropped[:, :, 8:].any()  # only flat-side dots went
  assert result.details["lattice"]["images_lowered"] == 4


def test_the_contrast_floor_keeps_every_dot_and_lowers_the_flat_ones_first():
  images, labels = _half_flat()
  config = _config(period=4, min_ssim=0.98, ssim_floor="contrast")
  config.noise.epsilon = 30 / 255
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  clean = np.round(images * 255).astype(np.uint8)
  written = np.round((images + result.delta) * 255).astype(np.uint8)
  assert (utility.per_image_stats(clean, written)["ssim"] >= 0.98).all()
  textured = labels[:, 0] == 1
  support = lattice.lattice_support(16, 16, 4)
  # Every dot of a textured image stays, at whole levels from 1 to ε.
  assert (result.masks[textured] == support[None]).all() and not result.masks[~textured].any()
  per = np.abs(written.astype(int) - clean.astype(int))[..., 0]
  assert per[result.masks].min() >= 1 and per[result.masks].max() <= 30
  # The busy half keeps more than the flat half on every image.
  flat_side = (per[textured][:, :, :8] * support[:, :8]).sum((1, 2)) / support[:, :8].sum()
  busy_side = (per[textured][:, :, 8:] * support[:, 8:]).sum((1, 2)) / support[:, 8:].sum()
  assert (busy_side > flat_side).all()
  assert result.details["lattice"]["images_lowered"] == 4
  assert result.details["lattice"]["ssim_floor"] == "contrast"


def test_the_contrast_floor_keeps_more_of_the_texture_than_lowering_the_image_alike():
  """The reason for the mode: at the same floor, more summed dot level per image."""
  images, labels = _half_flat(seed=1)
  kept = {}
  for mode in ("amplitude", "contrast"):
    config = _config(period=4, min_ssim=0.98, ssim_floor=mode)
    config.noise.epsilon = 30 / 255
    delta = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2).delta
    kept[mode] = np.abs(np.round(delta * 255)).sum((1, 2, 3))[labels[:, 0] == 1]
  assert (kept["contrast"] > kept["amplitude"]).all()


def test_an_image_that_passes_at_full_strength_is_the_same_under_every_floor_mode():
  images, labels = _flat_and_busy()
  outs = {}
  for mode in ssim_floor.MODES:
    config = _config(period=4, min_ssim=0.9, ssim_floor=mode)
    config.noise.epsilon = 24 / 255
    outs[mode] = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  busy = np.arange(12) >= 6
  for mode in ssim_floor.MODES[1:]:
    np.testing.assert_array_equal(outs[mode].delta[busy], outs["amplitude"].delta[busy])


def test_the_floor_off_is_the_pattern_as_before_and_bad_floors_are_refused():
  images, labels = _flat_and_busy()
  a = methods.generate_noise(_config(), images, labels, task=BINARY, num_classes=2)
  b = methods.generate_noise(_config(min_ssim=0.0), images, labels, task=BINARY, num_classes=2)
  np.testing.assert_array_equal(a.delta, b.delta)
  for bad in (1.0, -0.1, 1.5):  # (ConfigDict itself refuses a string for a float field)
    with pytest.raises(ValueError, match="noise.lattice.min_ssim"):
      methods.check_settings(_config(min_ssim=bad))
  with pytest.raises(ValueError, match="noise.lattice.ssim_floor"):
    methods.check_settings(_config(min_ssim=0.9, ssim_floor="blur"))


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
  assert (changed.sum((1, 2)) <= int(np.ceil(0.1 * 28 * 28))).all()
  assert np.abs(noise).max() == 8
  # The floor holds on the written file, image by image, as the manifest measured it.
  assert manifest["split_stats"]["train"]["ssim_min"] >= 0.97
  assert manifest["lattice"]["min_ssim"] == 0.97


@pytest.mark.parametrize("field,value,match", [
    ("pattern", "stripes", "noise.lattice.pattern"),
    ("period", 1, "noise.lattice.period"),
    ("tile", 0, "noise.lattice.tile"),
    ("bare", "median", "noise.lattice.bare"),
    ("polarity", "grey", "noise.lattice.polarity"),
    ("placement", "corner", "noise.lattice.placement"),
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
  # 14 px, period 5: offsets 2, 7, 12 -> 3 × 3 = 9 dots (4.6 %), not 1/25 = 4 % (8 px).
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


def test_dark_polarity_is_the_bright_texture_negated():
  images, labels = _toy()
  bright = methods.generate_noise(_config(), images, labels, task=BINARY, num_classes=2)
  dark = methods.generate_noise(_config(polarity="dark"), images, labels, task=BINARY,
                                num_classes=2)
  np.testing.assert_allclose(dark.delta, -bright.delta, atol=1e-6)
  assert dark.details["lattice"]["polarity"] == "dark"


def test_peak_placement_puts_one_dot_per_cell_on_its_local_peak():
  images, labels = _toy(size=12)
  rng = np.random.default_rng(1)
  images = images * 0 + 0.4
  planted = np.zeros((len(images), 12, 12), bool)
  for n in range(len(images)):  # one standing-out pixel at a random place in every 4×4 cell
    for r0 in range(0, 12, 4):
      for c0 in range(0, 12, 4):
        r, c = r0 + rng.integers(4), c0 + rng.integers(4)
        planted[n, r, c] = True
        images[n, r, c] = 0.6
  np.testing.assert_array_equal(lattice.peak_support(images, 4), planted)
  result = methods.generate_noise(_config(placement="peak"), images, labels, task=BINARY,
                                  num_classes=2)
  textured = labels[:, 0] == 0
  np.testing.assert_array_equal(result.masks[textured], planted[textured])
  assert not result.masks[~textured].any()
  # Never more than k pixels on the written file: one per cell.
  levels = np.round(result.delta * 255)
  assert (np.abs(levels).max(-1) > 0).sum((1, 2)).max() == 9
  assert result.details["lattice"]["placement"] == "peak"


def test_peak_placement_on_a_partial_grid_is_counted_and_dark_peaks_are_dips():
  # 14 px, period 4: 4 × 4 cells (the last ones partial) -> 16 dots, more than 10 % (20).
  images, labels = _toy(size=14)
  assert lattice.peak_support(images, 4).sum((1, 2)).tolist() == [16] * len(images)
  config = _config(placement="peak")
  config.noise.mask_ratio = 0.08  # k = 16
  methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  config.noise.mask_ratio = 0.07
  with pytest.raises(ValueError, match="puts 16 dot pixels"):
    methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  dip = np.full((1, 4, 4, 1), 0.5)
  dip[0, 1, 2] = 0.2
  assert lattice.peak_support(dip, 4, "dark")[0, 1, 2]


def test_peak_placement_takes_single_pixels_only():
  with pytest.raises(ValueError, match="places single pixels"):
    methods.check_settings(_config(placement="peak", dot=2, period=8))


def test_a_skewed_lattice_is_one_pixel_in_every_period_and_no_two_touch():
  # 28 px, period 10, skew 3: the residue with the fewest pixels, 78 (9.95 %), not 79.
  support = lattice.lattice_support(28, 28, 10, skew=3)
  assert support.sum() == 78 and support.mean() <= 0.1
  rows, cols = np.nonzero(support)
  assert len(set((rows + 3 * cols) % 10)) == 1
  padded = np.pad(support, 1)
  neighbours = sum(np.roll(np.roll(padded, a, 0), b, 1)
                   for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0))[1:-1, 1:-1]
  assert not (support & (neighbours > 0)).any()
  assert lattice.lattice_support(28, 28, 13, skew=5).sum() == 60


def test_a_skewed_lattice_is_written_whole_and_within_the_ratio():
  images, labels = _toy()
  config = _config(period=10, skew=3)
  config.noise.mask_ratio = float(lattice.lattice_support(12, 12, 10, skew=3).mean())
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  minority = labels[:, 0] == 0
  assert (result.masks[minority] == lattice.lattice_support(12, 12, 10, skew=3)).all()
  assert not result.masks[~minority].any()
  assert result.details["lattice"]["skew"] == 3
  config.noise.mask_ratio = 0.05
  with pytest.raises(ValueError, match="more than noise.mask_ratio"):
    methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)


@pytest.mark.parametrize("fields,match", [
    ({"period": 10, "skew": 10}, r"skew must be an integer in \[0, period=10\)"),
    ({"period": 10, "skew": 1}, "one diagonal line"),
    ({"period": 10, "skew": 9}, "one diagonal line"),
    ({"period": 10, "skew": 3, "tile": 2}, "single pixels with one sign"),
    ({"period": 10, "skew": 3, "placement": "peak"}, "single pixels with one sign"),
])
def test_bad_skews_are_refused(fields, match):
  with pytest.raises(ValueError, match=match):
    methods.check_settings(_config(**fields))


def test_also_periods_add_their_centred_lattices_to_the_support():
  config = _config(also_periods=(7,))
  support = lattice.lattice_support(28, 28, 4, also_periods=(7,))
  union = lattice.lattice_support(28, 28, 4) | lattice.lattice_support(28, 28, 7)
  assert (support == union).all() and support.sum() == 49 + 16 - 1  # one dot on both
  images, labels = _toy(size=28)
  config.noise.mask_ratio = float(support.mean())
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  minority = labels[:, 0] == 0
  assert (result.masks[minority] == support).all() and not result.masks[~minority].any()
  np.testing.assert_allclose(result.delta[minority][:, support], 8 / 255, rtol=1e-5)
  assert result.details["lattice"]["also_periods"] == [7]


@pytest.mark.parametrize("fields,match", [
    ({"also_periods": (1,)}, "tuple of integers"),
    ({"also_periods": (7,), "dot": 2, "period": 8}, "single pixels with one sign"),
    ({"also_periods": (7,), "tile": 2}, "single pixels with one sign"),
])
def test_bad_also_periods_are_refused(fields, match):
  with pytest.raises(ValueError, match=match):
    methods.check_settings(_config(**fields))
