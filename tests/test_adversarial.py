"""Class-wise error-maximizing noise (`noise.method='adversarial'`)."""
import json

import ml_collections
import numpy as np
import pytest

from configs import adversarial as adversarial_config
from salm_jax import pipeline
from salm_jax import tasks
from salm_jax.data import protected as protected_lib
from salm_jax.noise.baselines import adversarial
from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise import methods

BINARY, MULTI = tasks.BINARY, tasks.MULTI_CLASS


def _config(**adv) -> ml_collections.ConfigDict:
  config = adversarial_config.get_config("synthetic,tiny")
  config.noise.mask_ratio = 0.1
  config.noise.adversarial.update({"pretrain_steps": 2, "passes": 2, **adv})
  return config


def _toy(n=48, size=8, channels=1, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(0.0, 1.0, (n, size, size, channels)).astype(np.float32)
  labels = (np.arange(n) % classes)[:, None].astype(np.int64)
  return images, labels


def test_target_is_the_next_class():
  labels = np.array([[0], [1], [2], [2]])
  np.testing.assert_array_equal(adversarial.target_labels(labels, 3)[:, 0], [1, 2, 0, 0])
  np.testing.assert_array_equal(adversarial.target_labels(np.array([[0], [1]]), 2)[:, 0], [1, 0])


@pytest.mark.parametrize("channels", [1, 3])
def test_one_pattern_per_class_on_at_most_k_pixels_within_epsilon(channels):
  images, labels = _toy(channels=channels)
  config = _config()
  result = methods.generate_noise(config, images, labels, task=MULTI, num_classes=3,
                                  progress=False)
  k = masks_lib.num_kept(0.1, 64)
  assert result.rounds == 2 and [r["round"] for r in result.history] == [1, 2]
  assert {"accuracy", "target_rate"} <= set(result.history[0])
  clean = np.rint(images * 255).astype(np.uint8)
  written = protected_lib.quantize(clean, result.delta, config.noise.epsilon)
  changed = (written.astype(np.int16) != clean).any(-1)
  assert changed.any() and (changed.sum((1, 2)) <= k).all()  # on the written uint8 file
  assert np.abs(written.astype(np.int16) - clean).max() <= 8
  for c in range(3):
    masks = result.masks[labels[:, 0] == c]
    np.testing.assert_array_equal(masks, np.broadcast_to(masks[0], masks.shape))
    assert masks[0].sum() == k
  assert not (changed & ~result.masks).any()  # the noise lives on the class's support


def test_the_step_moves_towards_the_next_class():
  """More passes push the surrogate's prediction on x + δ towards the target class."""
  images, labels = _toy(n=64, classes=2)
  config = _config(pretrain_steps=4, passes=1)
  config.noise.update(mask_ratio=1.0, epsilon=64 / 255, step_size=16 / 255, pgd_steps=4)
  result = methods.generate_noise(config, images, labels, task=BINARY, num_classes=2,
                                  progress=False)
  assert result.history[-1]["target_rate"] > 0.5


def test_bad_settings_are_refused_before_anything_runs():
  images, labels = _toy()
  for field in ("passes", "pretrain_steps"):
    config = _config(**{field: 0})
    with pytest.raises(ValueError, match=f"noise.adversarial.{field}"):
      methods.check_settings(config)
  with pytest.raises(ValueError, match="multi-label"):
    methods.generate_noise(_config(), images, (labels > 0).astype(np.int64) @ np.ones((1, 2),
                           np.int64), task=tasks.MULTI_LABEL, num_classes=2)


def test_pipeline_protects_evaluates_and_reports(tmp_path):
  config = _config()
  summary = pipeline.run_all(config, str(tmp_path), progress=False)
  assert summary["victims"] and (tmp_path / "report" / "index.html").exists()
  manifest = json.loads((tmp_path / "protected" / "manifest.json").read_text())
  assert manifest["method"] == "adversarial" and manifest["surrogate"] == "small_cnn"
  assert manifest["linf_bound_uint8"] == 8 and manifest["rounds"] == 2
  noise = protected_lib.read_noise(str(tmp_path / "protected"))["train"]["noise"]
  assert 0 < (noise != 0).mean() <= 0.1 + 1e-9
