"""The surrogate's training step and its exact BatchNorm recalibration."""
import jax
import jax.numpy as jnp
import numpy as np

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
