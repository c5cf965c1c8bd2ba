"""The baselines beside SALM: OPS, the random-sign control, and the method registry."""
import json

import ml_collections
import numpy as np
import pytest

from configs import lattice as lattice_config
from configs import ops as ops_config
from configs import random_noise as random_config
from configs import salm
from salm_jax import pipeline
from salm_jax import protect as protect_lib
from salm_jax import tasks
from salm_jax.data import protected as protected_lib
from salm_jax.noise import methods
from salm_jax.noise.baselines import ops
from salm_jax.noise.baselines import random_noise

BINARY, MULTI = tasks.BINARY, tasks.MULTI_CLASS


def _config(method: str, **noise) -> ml_collections.ConfigDict:
  """The method's own config (its block included) on the tiny phantom."""
  config = {"ops": ops_config, "random": random_config}.get(method, salm).get_config(
      "synthetic,tiny")
  config.noise.method = method
  config.noise.update(noise)
  return config


def _toy(n=60, size=8, channels=1, classes=3, low=0.2, high=0.8, seed=0):
  """Mid-gray random images (no pixel at 0 or 1), labels cycling through the classes."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(low, high, (n, size, size, channels)).astype(np.float32)
  labels = (np.arange(n) % classes)[:, None].astype(np.int64)
  return images, labels


def test_ops_finds_the_planted_pixel():
  """Class 0 is black at (3, 5), class 1 white at (6, 2) in every image: the unique optima."""
  images, labels = _toy(classes=2)
  images[labels[:, 0] == 0, 3, 5] = 0.0
  images[labels[:, 0] == 1, 6, 2] = 1.0
  positions, targets = ops.search(images, labels[:, 0], num_classes=2, pixels=1)
  assert divmod(int(positions[0, 0]), 8) == (3, 5) and targets[0, 0].tolist() == [1.0]
  assert divmod(int(positions[1, 0]), 8) == (6, 2) and targets[1, 0].tolist() == [0.0]


def test_ops_score_is_mean_over_std_of_the_change():
  """The moment formula equals the official code's np.mean(d) / np.std(d), d = |ξ − x|."""
  images, _ = _toy(n=25, size=4, channels=3, classes=1)
  score, mean = ops.class_scores(images)
  for p in (0, 5, 15):
    for v, xi in enumerate(ops.colours(3)):
      d = np.abs(xi - images.reshape(25, 16, 3)[:, p].astype(np.float64))
      np.testing.assert_allclose(score[p, v], d.mean() / d.std(), rtol=1e-9)
      np.testing.assert_allclose(mean[p, v], d.mean(), rtol=1e-9)


@pytest.mark.parametrize("channels,pixels", [(1, 1), (1, 3), (3, 1), (3, 2)])
def test_ops_changes_k_pixels_the_same_way_within_a_class(channels, pixels):
  images, labels = _toy(channels=channels)
  config = _config("ops")
  config.noise.ops.pixels = pixels
  result = methods.generate_noise(config, images, labels, task=MULTI, num_classes=3)
  assert result.surrogate is None and result.history == [] and result.rounds == 0
  changed = (result.delta != 0).any(-1)
  np.testing.assert_array_equal(changed, result.masks)
  assert (changed.sum((1, 2)) == pixels).all()
  out = images + result.delta
  assert set(np.unique(out[changed])) <= {0.0, 1.0}  # pixels set to a cube corner
  pairs = set()
  for k in range(3):
    members = labels[:, 0] == k
    assert (changed[members] == changed[members][0]).all()
    assert (out[members][changed[members]].reshape(members.sum(), -1) == out[members][0][
        changed[members][0]].ravel()).all()
    for y, x in zip(*np.nonzero(changed[members][0])):
      pairs.add((y, x, tuple(out[members][0][y, x])))
  assert len(pairs) == 3 * pixels  # no two classes share a (position, colour) shortcut


def test_ops_bound_is_its_own_not_noise_epsilon():
  config = _config("ops")
  assert config.noise.epsilon == 8 / 255 and methods.linf_bound(config) == 1.0
  images, labels = _toy()
  result = methods.generate_noise(config, images, labels, task=MULTI, num_classes=3)
  clean = np.rint(images[..., 0] * 255).astype(np.uint8)
  written = protected_lib.quantize(clean, result.delta, methods.linf_bound(config))
  assert set(np.unique(written[result.masks])) <= {0, 255}
  config.noise.ops.epsilon = 16 / 255  # the bounded variant clips
  result = methods.generate_noise(config, images, labels, task=MULTI, num_classes=3)
  assert np.abs(result.delta).max() == pytest.approx(16 / 255)


def test_ops_rejects_multilabel_and_bad_pixels():
  images, labels = _toy()
  with pytest.raises(ValueError, match="one class per image"):
    methods.generate_noise(_config("ops"), images, labels, task=tasks.MULTI_LABEL,
                           num_classes=1)
  config = _config("ops")
  config.noise.ops.pixels = 0
  with pytest.raises(ValueError, match="noise.ops.pixels"):
    methods.generate_noise(config, images, labels, task=MULTI, num_classes=3)


def test_registry_rejects_an_unknown_method():
  images, labels = _toy()
  with pytest.raises(ValueError, match="Unknown noise.method 'bogus'.*ops.*random.*salm"):
    methods.generate_noise(_config("bogus"), images, labels, task=MULTI, num_classes=3)
  config = _config("salm")
  del config.noise["method"]  # configs without the field are SALM runs
  assert methods.method_name(config) == "salm"
  assert ops_config.get_config("synthetic,tiny").noise.method == "ops"
  assert random_config.get_config("breastmnist").noise.method == "random"


def test_random_class_mode_is_one_pattern_per_class():
  images, labels = _toy(channels=3)
  config = _config("random", mode="class", mask_ratio=0.25)
  result = methods.generate_noise(config, images, labels, task=MULTI, num_classes=3)
  assert (result.masks.sum((1, 2)) == 16).all()  # ceil(0.25 · 64)
  np.testing.assert_allclose(np.abs(result.delta[result.masks]), 8 / 255, rtol=1e-5)
  for k in range(3):
    members = result.delta[labels[:, 0] == k]
    np.testing.assert_array_equal(members, np.broadcast_to(members[0], members.shape))
  assert not np.array_equal(result.delta[0], result.delta[1])
  again = methods.generate_noise(config, images, labels, task=MULTI, num_classes=3)
  np.testing.assert_array_equal(again.delta, result.delta)  # from config.seed, nothing else


def test_random_signs_flip_at_saturated_pixels_so_every_support_pixel_changes():
  images, labels = _toy(channels=1, low=0.0, high=1.0)
  images[::2, :4] = 0.0
  images[1::2, 4:] = 1.0
  config = _config("random", mask_ratio=0.5)
  result = methods.generate_noise(config, images, labels, task=MULTI, num_classes=3)
  clean = np.rint(images[..., 0] * 255).astype(np.uint8)
  written = protected_lib.quantize(clean, result.delta, config.noise.epsilon)
  diff = written.astype(np.int16) - clean
  np.testing.assert_array_equal(diff != 0, result.masks)
  assert (np.abs(diff[result.masks]) == 8).all()


@pytest.fixture(scope="module")
def salm_run(tmp_path_factory):
  """A tiny SALM protect of the synthetic phantom (protect only)."""
  workdir = tmp_path_factory.mktemp("salm")
  protect_lib.protect(_config("salm"), str(workdir), progress=False)
  return workdir


def _support(workdir) -> np.ndarray:
  noise = protected_lib.read_noise(str(workdir / "protected"))["train"]["noise"]
  return noise != 0  # gray: (N, H, W)


def test_random_pipeline_reuses_the_salm_runs_exact_support(salm_run, tmp_path):
  config = random_config.get_config("synthetic,tiny")
  config.noise.random.support_from = str(salm_run / "protected")
  summary = pipeline.run_all(config, str(tmp_path), progress=False)
  support = _support(salm_run)
  assert 0 < support.mean() < 1
  np.testing.assert_array_equal(_support(tmp_path), support)
  noise = protected_lib.read_noise(str(tmp_path / "protected"))["train"]["noise"]
  assert (np.abs(noise[support]) == 8).all()
  manifest = json.loads((tmp_path / "protected" / "manifest.json").read_text())
  assert manifest["method"] == "random" and manifest["surrogate"] is None
  assert manifest["epsilon"] == pytest.approx(8 / 255) and manifest["linf_bound_uint8"] == 8
  assert manifest["mask_ratio"] == pytest.approx(support.mean())
  assert manifest["random"]["support_from"] == str(salm_run / "protected")
  assert summary["victims"] and (tmp_path / "report" / "index.html").exists()
  results = json.loads((tmp_path / "evaluation" / "results.json").read_text())
  assert results["protection"]["method"] == "random"


def test_random_support_from_another_dataset_is_refused(salm_run):
  images = protected_lib.read_protected(str(salm_run / "protected"))[0].splits["train"].images
  images = images[..., None].astype(np.float32) / 255.0  # the *protected* images
  with pytest.raises(ValueError, match="differ from the images being protected"):
    random_noise.read_support(str(salm_run / "protected"), ["train"], images)
  with pytest.raises(ValueError, match="another dataset"):
    random_noise.read_support(str(salm_run / "protected"), ["train"], images[:10])
  with pytest.raises(ValueError, match="not 'val'"):
    random_noise.read_support(str(salm_run / "protected"), ["val"], images)


def test_ops_pipeline_protects_evaluates_and_reports(tmp_path):
  summary = pipeline.run_all(ops_config.get_config("synthetic,tiny"), str(tmp_path),
                             progress=False)
  manifest = json.loads((tmp_path / "protected" / "manifest.json").read_text())
  assert manifest["method"] == "ops" and manifest["epsilon"] == 1.0
  assert manifest["linf_bound_uint8"] == 255 and manifest["rounds"] == 0
  assert manifest["mask_ratio"] == pytest.approx(1 / 28 ** 2)
  assert [len(c) for c in manifest["ops"]] == [1, 1]
  noise = protected_lib.read_noise(str(tmp_path / "protected"))["train"]["noise"]
  assert ((noise != 0).sum((1, 2)) <= 1).all()
  assert not (tmp_path / "metrics.jsonl").exists()
  with np.load(tmp_path / "preview.npz") as preview:
    assert not preview["saliency"].any()
  index = (tmp_path / "report" / "index.md").read_text()
  assert "noise method 'ops'" in index and summary["victims"]


def test_random_control_with_source_magnitudes_copies_the_floored_levels(tmp_path):
  """A lattice whose SSIM floor lowered some images: the control moves each pixel as far."""
  source = lattice_config.get_config("synthetic,tiny")
  source.noise.lattice.update(min_ssim=0.99)
  source.noise.epsilon = 24 / 255
  protect_lib.protect(source, str(tmp_path / "lattice"), progress=False)
  written = protected_lib.read_noise(str(tmp_path / "lattice" / "protected"))["train"]["noise"]
  levels = np.abs(written.astype(np.int16))
  assert len(np.unique(levels[levels > 0])) > 1  # the floor lowered some images
  config = random_config.get_config("synthetic,tiny")
  config.noise.mode = "class"
  config.noise.epsilon = 24 / 255
  config.noise.random.update(support_from=str(tmp_path / "lattice" / "protected"),
                             magnitude="source")
  protect_lib.protect(config, str(tmp_path / "control"), progress=False)
  control = protected_lib.read_noise(str(tmp_path / "control" / "protected"))["train"]["noise"]
  np.testing.assert_array_equal(np.abs(control.astype(np.int16)), levels)
  assert (np.sign(control) != np.sign(written)).any()  # the signs are the control's own


def test_source_magnitudes_need_a_source():
  config = random_config.get_config("synthetic,tiny")
  config.noise.random.magnitude = "source"
  with pytest.raises(ValueError, match="set support_from"):
    methods.check_settings(config)
  config.noise.random.magnitude = "half"
  with pytest.raises(ValueError, match="noise.random.magnitude"):
    methods.check_settings(config)
