"""The AR-poison and LSP baselines: budgets, clipping, seeds, class structure, pipeline."""
import json

import ml_collections
import numpy as np
import pytest

from configs import ar as ar_config
from configs import lsp as lsp_config
from salm_jax import protect as protect_lib
from salm_jax import tasks
from salm_jax.data import phantom
from salm_jax.data import protected as protected_lib
from salm_jax.noise import methods
from salm_jax.noise.baselines import ar
from salm_jax.noise.baselines import lsp
from tests.helpers import tiny

BINARY, MULTI = tasks.BINARY, tasks.MULTI_CLASS
CONFIGS = {"ar": ar_config, "lsp": lsp_config}


def _config(method: str, seed: int = 0, **block) -> ml_collections.ConfigDict:
  config = CONFIGS[method].get_config("synthetic,tiny")
  config.seed = seed
  config.noise[method].update(block)
  return config


def _gray(n=48, size=28, channels=1, classes=3, value=0.5):
  """Flat mid-gray images (no clipping for these budgets), labels cycling over the classes."""
  images = np.full((n, size, size, channels), value, np.float32)
  labels = (np.arange(n) % classes)[:, None].astype(np.int64)
  return images, labels


def _noise(method, images, labels, classes, task=MULTI, **kwargs):
  return methods.generate_noise(_config(method, **kwargs), images, labels, task=task,
                                num_classes=classes)


# ---------------------------------------------------------------- AR poisons

def _raster_ar(coefs, start):
  """The AR process written pixel by pixel, as a 3×3 window sum (for one sample)."""
  x = np.array(start, np.float64, copy=True)   # (C, Sh, Sw)
  _, sh, sw = x.shape
  for i in range(sh - 2):
    for j in range(sw - 2):
      x[:, i + 2, j + 2] = (coefs * x[:, i:i + 3, j:j + 3]).sum((1, 2))
  return x


@pytest.mark.parametrize("channels", [1, 3])
def test_ar_recursion_matches_the_pixel_by_pixel_process(channels):
  rng = np.random.default_rng(3)
  coefs = np.stack([ar.draw_coefficients(rng, channels) for _ in range(4)])   # (4, C, 3, 3)
  assert np.allclose(coefs[..., 2, 2], 0) and np.allclose(coefs.sum((2, 3)), 1)
  start = rng.standard_normal((4, channels, 9, 11))
  fast = ar.run_process(coefs, start)
  for i in range(4):
    np.testing.assert_allclose(fast[i], _raster_ar(coefs[i], start[i]), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("channels", [1, 3])
def test_ar_noise_has_the_l2_budget_and_one_process_per_class(channels):
  images, labels = _gray(channels=channels)
  result = _noise("ar", images, labels, 3)
  delta, details = result.delta, result.details["ar"]
  assert delta.shape == images.shape and delta.dtype == np.float32 and result.rounds == 0
  assert result.masks.shape == images.shape[:3] and result.masks.all()  # dense
  np.testing.assert_allclose(np.linalg.norm(delta.reshape(len(delta), -1), axis=1), 1.0,
                             rtol=1e-5)
  assert details["l2"] == 1.0 and details["canvas"] == [32, 32] and details["crop"] == 4
  coefs = np.asarray(details["coefficients"])
  assert coefs.shape == (3, channels, 3, 3)
  assert np.allclose(coefs[..., 2, 2], 0) and np.allclose(coefs.sum((2, 3)), 1, atol=1e-5)
  assert len({c.tobytes() for c in coefs}) == 3          # a process of its own per class
  assert details["separation"] >= ar.default_config().min_response
  assert details["linf"] == pytest.approx(np.abs(delta).max(), rel=1e-6)
  # The matching filter (window, −1 at the centre) annihilates its own class's noise and
  # responds to the other classes' noise: the smallest response names the class.
  resp = ar.responses(ar.matching_filters(coefs), delta)            # (filters, images)
  own = resp[labels[:, 0], np.arange(len(delta))]
  assert own.max() < 1e-3
  assert (resp.argmin(0) == labels[:, 0]).all()
  others = np.where(np.arange(3)[:, None] == labels[:, 0], np.inf, resp)
  assert others.min() > 20 * own.max()


def test_ar_same_seed_same_noise_other_seed_other_noise():
  images, labels = _gray(n=12)
  first = _noise("ar", images, labels, 3)
  again = _noise("ar", images, labels, 3)
  np.testing.assert_array_equal(first.delta, again.delta)
  assert first.details == again.details
  other = _noise("ar", images, labels, 3, seed=1)
  assert not np.allclose(other.details["ar"]["coefficients"], first.details["ar"]["coefficients"])
  assert not np.allclose(other.delta, first.delta)


def test_ar_chunking_does_not_change_the_samples(monkeypatch):
  coefs = ar.draw_coefficients(np.random.default_rng(0), 5)[:, None]
  whole = ar.samples(coefs, np.random.default_rng(1), (12, 12), 4, 8, 8)
  monkeypatch.setattr(ar, "_CHUNK_VALUES", 2 * 144)   # two images per chunk
  np.testing.assert_array_equal(ar.samples(coefs, np.random.default_rng(1), (12, 12), 4, 8, 8),
                                whole)


def test_ar_clips_to_the_unit_range_and_the_budget_follows_the_config():
  images, labels = tiny.blobs(n=32, size=12, channels=3)
  result = _noise("ar", images, labels, 2, task=BINARY, l2=2.0)
  out = images.astype(np.float64) + result.delta
  assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
  details = result.details["ar"]
  assert details["l2"] == 2.0 and details["canvas"] == [16, 16]
  assert details["l2_after_clip_min"] < 2.0            # the dark background clipped some of it
  assert details["linf_before_clip"] >= details["linf"]
  norms = np.linalg.norm(result.delta.reshape(32, -1), axis=1)
  assert (norms <= 2.0 + 1e-5).all()


def test_ar_bound_never_clips_its_own_noise():
  config = _config("ar")
  assert config.noise.epsilon == 8 / 255 and methods.linf_bound(config) == 1.0
  config.noise.ar.l2 = 0.5
  assert methods.linf_bound(config) == 0.5               # one value never exceeds the L2 norm
  images, labels = _gray(n=6, classes=2)
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2)
  clean = np.rint(images * 255).astype(np.uint8)
  written = protected_lib.quantize(clean, result.delta, methods.linf_bound(config))
  np.testing.assert_array_equal(written, np.rint(clean + 255.0 * result.delta.astype(np.float64)))


def test_ar_refuses_multilabel_and_bad_settings():
  images, labels = _gray(n=6, classes=2)
  with pytest.raises(ValueError, match="AR poisons.*one class per image"):
    _noise("ar", images, np.zeros((6, 3), np.int64), 3, task=tasks.MULTI_LABEL)
  for field, value, message in [("crop", 1, "noise.ar.crop"), ("l2", 0.0, "noise.ar.l2"),
                                ("pool", 0, "noise.ar.pool")]:
    config = _config("ar", **{field: value})
    with pytest.raises(ValueError, match=message):
      methods.check_settings(config)
  config = _config("ar")
  config.noise.ar.bogus = 1
  with pytest.raises(ValueError, match="noise.ar has no field bogus"):
    methods.check_settings(config)
  with pytest.raises(ValueError, match="noise.ar.pool = 2 is smaller than the 3 classes"):
    _noise("ar", *_gray(n=6, classes=3), 3, pool=2)
  with pytest.raises(ValueError, match="noise.ar.canvas"):
    _noise("ar", images, labels, 2, canvas=30)


def test_ar_larger_canvas_keeps_the_window_after_the_crop():
  images, labels = _gray(n=4, size=8, classes=2)
  result = _noise("ar", images, labels, 2, canvas=20)
  assert result.details["ar"]["canvas"] == [20, 20] and result.delta.shape == images.shape


# ---------------------------------------------------------------- LSP

@pytest.mark.parametrize("channels", [1, 3])
def test_lsp_noise_is_blockwise_with_the_rms_budget(channels):
  images, labels = _gray(channels=channels)
  result = _noise("lsp", images, labels, 3)
  delta, details = result.delta, result.details["lsp"]
  assert delta.shape == images.shape and delta.dtype == np.float32 and result.masks.all()
  budget = np.sqrt(28 * 28 * channels) * 6 / 255
  assert details["l2"] == pytest.approx(budget)
  np.testing.assert_allclose(np.linalg.norm(delta.reshape(len(delta), -1), axis=1), budget,
                             rtol=1e-5)
  assert details["grid"] == [4, 4] and details["features"] == 16 * channels
  # one value per 8×8 block and channel; the last row and column of blocks are cropped to 4 px
  for a in range(4):
    for b in range(4):
      block = delta[:, 8 * a:8 * a + 8, 8 * b:8 * b + 8]
      assert block.shape[1:3] == ((8 if a < 3 else 4), (8 if b < 3 else 4))
      np.testing.assert_array_equal(block, np.broadcast_to(block[:, :1, :1], block.shape))


def test_lsp_noise_is_linearly_separable_by_class():
  images, labels = _gray(n=90, classes=3)
  delta = _noise("lsp", images, labels, 3).delta
  x = np.concatenate([delta.reshape(90, -1), np.ones((90, 1))], axis=1).astype(np.float64)
  targets = np.eye(3)[labels[:, 0]]
  weights, *_ = np.linalg.lstsq(x, targets, rcond=None)
  assert ((x @ weights).argmax(1) == labels[:, 0]).all()
  # the class means differ far more than the samples spread around them
  means = np.stack([delta[labels[:, 0] == k].mean(0).ravel() for k in range(3)])
  spread = max(delta[labels[:, 0] == k].reshape(30, -1).std(0).mean() for k in range(3))
  gaps = [np.abs(means[i] - means[j]).mean() for i in range(3) for j in range(i + 1, 3)]
  assert min(gaps) > 2 * spread


def test_lsp_clusters_match_make_classification_in_distribution():
  """Centroids at ±class_sep, within-class variance dim/3 (N(0, I)·U[−1, 1]), as sklearn's."""
  datasets = pytest.importorskip("sklearn.datasets")
  dim, count = 8, 4000
  centroids, features = lsp.clusters(np.random.default_rng(0), [count, count], dim, 10.0)
  assert set(np.unique(centroids)) <= {-10.0, 10.0} and not (centroids[0] == centroids[1]).all()
  x, y = datasets.make_classification(
      n_samples=2 * count, n_features=dim, n_classes=2, n_informative=dim, n_redundant=0,
      n_repeated=0, class_sep=10.0, flip_y=0.0, n_clusters_per_class=1, random_state=0)
  for ours, theirs in zip(features, (x[y == 0], x[y == 1])):
    np.testing.assert_allclose(np.abs(ours.mean(0)), 10.0, atol=0.5)
    np.testing.assert_allclose(np.abs(theirs.mean(0)), 10.0, atol=0.5)
    assert ours.var(0).sum() == pytest.approx(theirs.var(0).sum(), rel=0.5)
  assert np.all(np.isin(np.round(lsp.hypercube_vertices(np.random.default_rng(1), 4, 2)),
                        [0.0, 1.0]))
  assert len(np.unique(lsp.hypercube_vertices(np.random.default_rng(1), 4, 2), axis=0)) == 4


def test_lsp_same_seed_same_noise_other_seed_other_noise():
  images, labels = _gray(n=12)
  first, again = _noise("lsp", images, labels, 3), _noise("lsp", images, labels, 3)
  np.testing.assert_array_equal(first.delta, again.delta)
  assert first.details == again.details
  other = _noise("lsp", images, labels, 3, seed=1)
  assert other.details["lsp"]["centroids_sha256"] != first.details["lsp"]["centroids_sha256"]
  assert not np.allclose(other.delta, first.delta)


def test_lsp_clips_on_real_images():
  data = phantom.make_phantom(size=28, channels=3, n_train=24, n_val=2, n_test=2,
                              task="multi-class", num_classes=3)
  images = data.splits["train"].images.astype(np.float32) / 255
  labels = data.splits["train"].labels
  result = _noise("lsp", images, labels, 3, epsilon_rms=0.1)
  out = images.astype(np.float64) + result.delta
  assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
  details = result.details["lsp"]
  assert details["l2_after_clip_min"] < details["l2"]   # the black border clipped some of it


def test_lsp_refuses_multilabel_and_bad_settings():
  images, labels = _gray(n=6, classes=2)
  with pytest.raises(ValueError, match="LSP.*one class per image"):
    _noise("lsp", images, np.zeros((6, 3), np.int64), 3, task=tasks.MULTI_LABEL)
  for field, value in [("patch", 0), ("epsilon_rms", -1.0), ("class_sep", 0.0)]:
    with pytest.raises(ValueError, match=f"noise.lsp.{field}"):
      methods.check_settings(_config("lsp", **{field: value}))
  with pytest.raises(ValueError, match="distinct centroids"):   # 1 feature: 2 vertices only
    _noise("lsp", *_gray(n=6, size=8, classes=3), 3, patch=8)
  assert methods.linf_bound(_config("lsp")) == 1.0


# ---------------------------------------------------------------- the pipeline

@pytest.mark.parametrize("method", ["ar", "lsp"])
def test_protect_writes_the_protected_file(method, tmp_path):
  config = CONFIGS[method].get_config("synthetic,tiny")
  assert config.noise.method == method
  manifest = protect_lib.protect(config, str(tmp_path), progress=False)
  out = tmp_path / "protected"
  assert (out / "phantom.npz").exists() and (out / "noise.npz").exists()
  on_disk = json.loads((out / "manifest.json").read_text())
  assert on_disk["method"] == method and on_disk["epsilon"] == 1.0
  assert on_disk["linf_bound_uint8"] == 255 and on_disk["rounds"] == 0
  assert on_disk[method]["linf"] > 0 and manifest[method] == on_disk[method]
  noise = protected_lib.read_noise(str(out))["train"]["noise"]
  assert np.abs(noise).max() <= round(255 * on_disk[method]["linf"]) + 1
  assert (noise != 0).mean() > 0.5                        # dense
