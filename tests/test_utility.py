"""Distortion figures and diagnostic utility of protected images."""
import numpy as np
import pytest

from salm_jax import tasks
from salm_jax.evaluation import metrics, utility


def _pair(rng, n=6, shape=(16, 16), bound=8, frac=0.1):
  clean = rng.integers(0, 256, (n,) + shape).astype(np.uint8)
  noise = rng.integers(-bound, bound + 1, clean.shape) * (rng.random(clean.shape) < frac)
  prot = np.clip(clean.astype(int) + noise, 0, 255).astype(np.uint8)
  return clean, prot


def test_image_stats_against_hand_computation():
  rng = np.random.default_rng(0)
  clean, prot = _pair(rng)
  prot[0] = clean[0]  # one image unchanged
  diff = np.abs(clean.astype(float) - prot.astype(float))
  per = utility.per_image_stats(clean, prot)
  np.testing.assert_array_equal(per["linf_uint8"], diff.reshape(6, -1).max(1))
  np.testing.assert_allclose(per["linf"], diff.reshape(6, -1).max(1) / 255)
  np.testing.assert_allclose(per["frac_changed"], (diff > 0).reshape(6, -1).mean(1))
  mse = ((diff / 255) ** 2).reshape(6, -1).mean(1)
  assert per["psnr"][0] == np.inf
  np.testing.assert_allclose(per["psnr"][1:], 10 * np.log10(1 / mse[1:]), rtol=1e-4)
  assert per["ssim"][0] == pytest.approx(1.0, abs=1e-6)
  assert np.all(per["ssim"][1:] < 1) and np.all(per["ssim"][1:] > 0.5)

  stats = utility.image_stats(clean, prot)
  assert stats["n_images"] == 6 and stats["n_changed_images"] == 5
  assert stats["linf_uint8"] == diff.max() and stats["linf"] == pytest.approx(diff.max() / 255)
  assert stats["frac_changed"] == pytest.approx((diff > 0).mean())
  assert stats["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse[1:])), rel=1e-4)
  assert stats["ssim"] == pytest.approx(per["ssim"].mean())
  # The untouched image's SSIM of 1.0 is in the mean over all images, not in the changed ones'.
  assert stats["ssim_changed"] == pytest.approx(per["ssim"][1:].mean())
  assert stats["ssim_min"] == pytest.approx(per["ssim"].min())
  assert stats["ssim_min"] < stats["ssim_changed"] < stats["ssim"]


def test_the_summary_line_names_the_changed_images_ssim_only_where_some_are_untouched():
  from salm_jax import pipeline  # pylint: disable=g-import-not-at-top
  u = {"psnr": 35.07, "ssim": 0.988, "ssim_changed": 0.956, "ssim_min": 0.883,
       "n_images": 546, "n_changed_images": 147, "frac_changed": 0.017, "linf_uint8": 18}
  verdict = {"word": "no", "held": 0, "victims": []}
  summary = {"utility": u, "dataset": "b", "split": "train", "victims": [], "verdict": verdict,
             "protected_file": "p", "tables": "t", "report": "r"}
  first, line = pipeline.summary_text(summary).splitlines()[:2]
  assert first.startswith("Protected: no (0 of 0 victims")
  assert "SSIM 0.988 (147 changed images: 0.956, lowest 0.883), 1.7% of pixels" in line
  u.update(n_changed_images=546, frac_changed_max=0.1)
  line = pipeline.summary_text(summary).splitlines()[1]
  assert ("SSIM 0.988, at most 10.0% of an image's pixels changed (1.7% on average), max "
          "change 18/255.") in line


def test_more_noise_means_lower_psnr_and_ssim():
  rng = np.random.default_rng(1)
  clean, small = _pair(rng, bound=2, frac=0.05)
  _, large = _pair(np.random.default_rng(1), bound=16, frac=0.5)
  a, b = utility.image_stats(clean, small), utility.image_stats(clean, large)
  assert a["psnr"] > b["psnr"] and a["ssim"] > b["ssim"]


def test_rgb_counts_a_pixel_once_and_identical_sets_are_json_safe():
  clean = np.zeros((2, 12, 12, 3), np.uint8)
  prot = clean.copy()
  prot[0, 0, 0, :] = 4  # one pixel, all three channels
  prot[1, 5, 5, 1] = 1  # one pixel, one channel
  per = utility.per_image_stats(clean, prot)
  np.testing.assert_allclose(per["frac_changed"], [1 / 144, 1 / 144])
  same = utility.image_stats(clean, clean)
  assert same["psnr"] is None and same["n_changed_images"] == 0 and same["linf"] == 0.0


def test_bad_inputs_are_named():
  a = np.zeros((2, 8, 8), np.uint8)
  with pytest.raises(ValueError, match="differ in shape"):
    utility.image_stats(a, np.zeros((2, 8, 9), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    utility.image_stats(a, a.astype(np.float32))


def _brightness_model(images):
  """A fake classifier: P(class 1) grows with the mean brightness of the image."""
  p1 = 1 / (1 + np.exp(-(images.mean(axis=(1, 2, 3)) - 0.5) * 20))
  return np.stack([1 - p1, p1], axis=1)


def test_diagnostic_utility_compares_clean_and_protected_copies():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 2, (40, 1))
  clean = np.clip(rng.normal(0.4 + 0.2 * labels[:, :, None, None], 0.05, (40, 1, 8, 8)),
                  0, 1).transpose(0, 2, 3, 1)
  clean = (clean * 255).astype(np.uint8)[..., 0]
  same = utility.diagnostic_utility(_brightness_model, clean, clean, labels, tasks.BINARY)
  assert same["agreement"] == 1.0 and same["delta_acc"] == 0.0 and same["delta_auc"] == 0.0
  ref = metrics.evaluate_scores(labels, _brightness_model(clean[..., None] / 255.0), tasks.BINARY)
  assert same["clean"] == pytest.approx(ref)
  # Darkening every image flips some decisions: agreement and ACC drop.
  darker = np.clip(clean.astype(int) - 40, 0, 255).astype(np.uint8)
  out = utility.diagnostic_utility(_brightness_model, clean, darker, labels, tasks.BINARY)
  assert out["agreement"] < 1.0
  assert out["protected"]["acc"] < out["clean"]["acc"]
  assert out["delta_acc"] == pytest.approx(out["protected"]["acc"] - out["clean"]["acc"])
  with pytest.raises(ValueError, match="nnx model or a function"):
    utility.diagnostic_utility("model", clean, clean, labels, tasks.BINARY)
