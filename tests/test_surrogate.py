"""The surrogate's training step and its exact BatchNorm recalibration."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salm_jax import tasks
from salm_jax.noise.salm import surrogate
from tests.helpers import tiny


def _make():
  cfg = surrogate.default_config()
  cfg.width = 4
  return surrogate.create(cfg, task=tasks.BINARY, num_classes=2, in_channels=1, image_size=12,
                          seed=0)


def test_train_steps_lower_the_loss_and_update_batch_stats():
  sur, state = _make()
  images, labels = tiny.blobs(64, 12)
  x = jnp.asarray(images).reshape(4, 16, 12, 12, 1)
  y = jnp.asarray(labels).reshape(4, 16, 1)
  before = tasks.loss(sur.apply(state, images, train=True)[0], labels, tasks.BINARY)
  new, metrics = jax.jit(lambda s, a, b, d: surrogate.train_steps(sur, s, a, b, d))(
      state, x, y, jnp.zeros_like(x))
  after = tasks.loss(sur.apply(new, images, train=True)[0], labels, tasks.BINARY)
  assert float(after) < float(before)
  assert set(metrics) == {"loss", "accuracy"}
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state["rest"], new["rest"])
  assert any(jax.tree.leaves(changed))


def test_recalibration_makes_inference_mode_match_training_mode():
  sur, state = _make()
  images, _ = tiny.blobs(32, 12)
  train_logits, _ = sur.apply(state, images, train=True)
  stale = sur.apply(state, images, train=False)[0]
  assert not np.allclose(stale, train_logits, atol=1e-3)
  fresh = surrogate.recalibrate_batch_norm(sur, state, jnp.asarray(images))
  np.testing.assert_allclose(sur.apply(fresh, images, train=False)[0], train_logits,
                             rtol=1e-3, atol=1e-3)
  # Parameters are untouched.
  jax.tree.map(np.testing.assert_array_equal, state["params"], fresh["params"])


def test_an_ensemble_averages_its_members_logits_and_trains_each():
  cfg = surrogate.default_config()
  cfg.ensemble = ("small_cnn:4", "resnet18:4")
  ens, state = surrogate.create(cfg, task=tasks.BINARY, num_classes=2, in_channels=1,
                                image_size=12, seed=0)
  assert isinstance(ens, surrogate.Ensemble) and len(state) == 2
  x = jnp.full((3, 12, 12, 1), 0.5)
  expected = sum(m.logits(s, x) for m, s in zip(ens.members, state)) / 2
  np.testing.assert_allclose(ens.logits(state, x), expected, rtol=1e-6)
  labels = jnp.zeros((2, 3, 1), jnp.int32)
  new, metrics = surrogate.train_steps(ens, state, jnp.stack([x, x]), labels,
                                       jnp.zeros((2,) + x.shape))
  for before, after in zip(state, new):  # every member took its SGD steps
    changed = jax.tree.map(lambda a, b: bool((a != b).any()), before["params"], after["params"])
    assert any(jax.tree.leaves(changed))
  assert set(metrics) == {"loss", "accuracy"}
  with pytest.raises(ValueError, match="model:width"):
    surrogate.check_ensemble(("resnet18:wide",))
