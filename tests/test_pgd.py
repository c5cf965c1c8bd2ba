"""masked_pgd and pixel_saliency: budgets, sparsity, error-minimization, EM equivalence."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from salm_jax import tasks
from salm_jax.models import create_model
from salm_jax.noise.salm import masks, pgd, saliency
from tests.helpers import tiny

EPS = 8 / 255


@pytest.fixture(scope="module")
def setup():
  """A fixed random surrogate in inference mode, and images touching 0 and 1."""
  model = create_model("small_cnn", num_classes=3, in_channels=2, image_size=10,
                       rngs=nnx.Rngs(0), width=4)
  model.eval()
  graphdef, state = nnx.split(model)
  logits_fn = Model(functools.partial(_apply, graphdef), state)
  x = jax.random.uniform(jax.random.key(1), (6, 10, 10, 2))
  x = x.at[:, :2].set(0.0).at[:, -2:].set(1.0)
  y = jnp.array([[0], [1], [2], [0], [1], [2]])
  return logits_fn, x, y


def _apply(graphdef, state, images):
  return nnx.merge(graphdef, state, copy=True)(images)


class Model:
  """`apply_fn` and `variables`, called as `logits_fn(images)` in the reference code."""

  def __init__(self, apply_fn, variables):
    self.apply_fn, self.variables = apply_fn, variables

  def __call__(self, images):
    return self.apply_fn(self.variables, images)


def masked_pgd(model, *args, **kwargs):
  return pgd.masked_pgd(model.apply_fn, model.variables, *args, **kwargs)


def _loss(logits_fn, x, y, d):
  return float(tasks.loss(logits_fn(x + d), y, tasks.MULTI_CLASS))


def test_budget_box_and_mask_support(setup):
  logits_fn, x, y = setup
  delta, union = masked_pgd(logits_fn, x, y, jnp.zeros_like(x), mask_ratio=0.1,
                            epsilon=EPS, step_size=2 / 255, steps=6, return_mask=True)
  chex.assert_shape(delta, x.shape)
  chex.assert_shape(union, x.shape[:3])
  assert float(jnp.abs(delta).max()) <= EPS + 1e-7
  assert float(jnp.abs(delta).max()) > 0
  xd = x + delta
  assert float(xd.min()) >= 0.0 and float(xd.max()) <= 1.0
  outside = jnp.where(union[..., None], 0.0, delta)
  np.testing.assert_array_equal(outside, 0.0)  # δ only where some step's mask was


def test_a_round_leaves_at_most_k_pixels(setup):
  """Masks re-chosen at every step touch more than k pixels; the round keeps k."""
  logits_fn, x, y = setup
  delta, union = masked_pgd(logits_fn, x, y, jnp.zeros_like(x), mask_ratio=0.05, steps=8,
                            step_size=1 / 255, return_mask=True)
  touched = (delta != 0).any(-1).sum((1, 2))
  assert int(touched.max()) <= masks.num_kept(0.05, 100)
  assert int(touched.min()) > 0
  assert int(union.sum((1, 2)).max()) > masks.num_kept(0.05, 100)


def test_the_kept_support_follows_saliency_not_raster_order(setup):
  """Pixels at exactly ±ε tie on |δ|: 'saliency' keeps the most salient, 'index' the first."""
  logits_fn, x, y = setup
  eps, alpha = 2 / 255, 0.5 / 255
  start = jnp.full_like(x, eps)                     # saturated everywhere, as late in a run
  kw = dict(mask_ratio=0.1, epsilon=eps, step_size=alpha, steps=1)
  by_saliency = masked_pgd(logits_fn, x, y, start, **kw)
  by_index = masked_pgd(logits_fn, x, y, start, support_ties="index", **kw)
  # The one step, written out: the pixels it leaves at ±ε on both channels tie.
  grad = saliency.input_gradient(logits_fn, x, tasks.label_matrix(y, tasks.MULTI_CLASS), start)[1]
  sal = saliency.reduce_channels(grad)
  step = jnp.where(masks.topk_mask(sal, 0.1)[..., None], jnp.sign(grad), 0.0)
  tied = np.asarray((jnp.abs(pgd.project(x, start - alpha * step, eps)) == eps).all(-1))
  k = masks.num_kept(0.1, 100)
  for i in range(len(x)):
    candidates = np.flatnonzero(tied[i].ravel())
    kept_index = np.flatnonzero(np.asarray(by_index[i]).any(-1).ravel())
    kept_saliency = np.flatnonzero(np.asarray(by_saliency[i]).any(-1).ravel())
    np.testing.assert_array_equal(kept_index, candidates[:k])
    ranked = candidates[np.argsort(-np.asarray(sal[i]).ravel()[candidates], kind="stable")]
    np.testing.assert_array_equal(kept_saliency, np.sort(ranked[:k]))
  with pytest.raises(ValueError, match="support_ties"):
    masked_pgd(logits_fn, x, y, start, support_ties="random", **kw)


def test_closure_form_compiles_once_per_function(setup):
  model, x, y = setup
  logits_fn = model.__call__
  first = pgd.masked_pgd_fn(logits_fn, x, y, jnp.zeros_like(x), steps=2)
  np.testing.assert_array_equal(first, masked_pgd(model, x, y, jnp.zeros_like(x), steps=2))


def test_new_weights_reuse_the_compiled_round(setup):
  model, x, y = setup
  masked_pgd(model, x, y, jnp.zeros_like(x), steps=2)
  before = pgd._compiled()._cache_size()  # pylint: disable=protected-access
  shifted = jax.tree.map(lambda v: v * 1.01 if jnp.issubdtype(v.dtype, jnp.floating) else v,
                         model.variables)
  masked_pgd(Model(model.apply_fn, shifted), x, y, jnp.zeros_like(x), steps=2)
  assert pgd._compiled()._cache_size() == before  # pylint: disable=protected-access


def test_fixed_mask_is_respected(setup):
  logits_fn, x, y = setup
  fixed = jnp.zeros(x.shape[:3], bool).at[:, 4:6, 4:6].set(True)
  delta, union = masked_pgd(logits_fn, x, y, jnp.zeros_like(x), mask_ratio=0.04, steps=3,
                                mask_schedule="fixed", fixed_mask=fixed, return_mask=True)
  np.testing.assert_array_equal(union, fixed)
  np.testing.assert_array_equal(jnp.where(fixed[..., None], 0.0, delta), 0.0)


def test_error_minimizing_lowers_the_loss(setup):
  logits_fn, x, y = setup
  zero = jnp.zeros_like(x)
  for ratio in (0.1, 1.0):
    delta = masked_pgd(logits_fn, x, y, zero, mask_ratio=ratio, steps=10, step_size=1 / 255)
    assert _loss(logits_fn, x, y, delta) < _loss(logits_fn, x, y, zero) - 1e-4


def _reference_em(logits_fn, x, y, delta, steps, alpha, eps):
  """EM (Huang et al. 2021) written independently: plain sign steps, no mask."""
  for _ in range(steps):
    g = jax.grad(lambda d: tasks.per_example_loss(logits_fn(x + d), y, tasks.MULTI_CLASS).sum())(
        delta)
    delta = jnp.clip(delta - alpha * jnp.sign(g), -eps, eps)
    delta = jnp.clip(x + delta, 0.0, 1.0) - x
  return delta


def test_ratio_one_is_exactly_em(setup):
  logits_fn, x, y = setup
  d0 = jax.random.uniform(jax.random.key(3), x.shape, minval=-EPS, maxval=EPS)
  d0 = jnp.clip(x + d0, 0, 1) - x
  ours = masked_pgd(logits_fn, x, y, d0, mask_ratio=1.0, epsilon=EPS, step_size=0.8 / 255,
                        steps=5)
  ref = _reference_em(logits_fn, x, y, d0, 5, 0.8 / 255, EPS)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))


def test_zero_steps_keep_the_start_on_its_top_k_pixels(setup):
  logits_fn, x, y = setup
  d0 = jax.random.uniform(jax.random.key(4), x.shape, minval=-0.01, maxval=0.01)
  np.testing.assert_array_equal(masked_pgd(logits_fn, x, y, d0, steps=0, mask_ratio=1.0), d0)
  np.testing.assert_array_equal(masked_pgd(logits_fn, x, y, d0, steps=0, mask_ratio=0.1),
                                masks.project_to_topk(d0, 0.1))


def test_class_wise_groups(setup):
  logits_fn, x, y = setup
  delta = masked_pgd(logits_fn, x, y, jnp.zeros((3,) + x.shape[1:]), mask_ratio=0.2,
                         steps=4, groups=y[:, 0])
  chex.assert_shape(delta, (3,) + x.shape[1:])
  assert 0 < float(jnp.abs(delta).max()) <= EPS + 1e-7


@pytest.mark.parametrize("kwargs, match", [
    (dict(mask_ratio=0.0), "mask_ratio"),
    (dict(mask_ratio=float("nan")), "mask_ratio"),
    (dict(epsilon=-0.1), "epsilon"),
    (dict(epsilon=float("nan")), "epsilon"),
    (dict(step_size=0.0), "step_size"),
    (dict(steps=-1), "steps"),
    (dict(mask_schedule="sometimes"), "mask_schedule"),
    (dict(mask_schedule="fixed"), "fixed_mask"),
    (dict(task="regression"), "task"),
])
def test_invalid_arguments_raise(setup, kwargs, match):
  logits_fn, x, y = setup
  with pytest.raises(ValueError, match=match):
    masked_pgd(logits_fn, x, y, jnp.zeros_like(x), **kwargs)


def test_shape_mismatch_raises(setup):
  logits_fn, x, y = setup
  with pytest.raises(ValueError, match="delta"):
    masked_pgd(logits_fn, x, y, jnp.zeros((1,) + x.shape[1:]))


def test_pixel_saliency_is_summed_abs_gradient(setup):
  model, x, y = setup
  sal = saliency.pixel_saliency(model.apply_fn, model.variables, x, y)
  chex.assert_shape(sal, x.shape[:3])
  g = jax.grad(lambda z: tasks.per_example_loss(model(z), y, tasks.MULTI_CLASS).sum())(x)
  np.testing.assert_allclose(sal, jnp.abs(g).sum(-1), rtol=1e-5, atol=1e-8)
  assert float(sal.min()) >= 0


def test_saliency_of_one_image_ignores_the_rest_of_the_batch(setup):
  logits_fn, x, y = setup
  alone = saliency.pixel_saliency(logits_fn.apply_fn, logits_fn.variables, x[:1], y[:1])
  together = saliency.pixel_saliency(logits_fn.apply_fn, logits_fn.variables, x, y)[:1]
  np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-9)


def test_multilabel_uses_bce():
  images, _ = tiny.blobs(4, 8)
  labels = jnp.array([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 1]])
  model = create_model("small_cnn", num_classes=3, in_channels=1, image_size=8,
                       rngs=nnx.Rngs(0), width=4)
  model.eval()
  delta = pgd.masked_pgd_fn(lambda z: model(z), jnp.asarray(images), labels,
                         jnp.zeros_like(images), task=tasks.MULTI_LABEL, steps=3)
  assert float(jnp.abs(delta).max()) > 0


def test_crop_flip_moves_each_image_within_the_padding():
  from salm_jax.noise.salm import augment  # pylint: disable=g-import-not-at-top
  x = jnp.arange(2 * 6 * 6, dtype=jnp.float32).reshape(2, 6, 6, 1) + 1
  out = augment.crop_flip(x, jax.random.key(0), pad=2)
  chex.assert_shape(out, x.shape)
  for i in range(2):  # every value is the image's own or a zero that entered at the border
    assert set(np.asarray(out[i]).ravel()) <= set(np.asarray(x[i]).ravel()) | {0.0}
  same = augment.crop_flip(x, jax.random.key(0), pad=0)
  assert all(np.array_equal(same[i], x[i]) or np.array_equal(same[i], x[i, :, ::-1])
             for i in range(2))


def test_eot_averages_over_crops_and_flips_and_needs_a_key(setup):
  model, x, y = setup
  kw = dict(mask_ratio=0.1, steps=3, groups=y[:, 0])
  zeros = jnp.zeros((3,) + x.shape[1:])
  plain = masked_pgd(model, x, y, zeros, **kw)
  eot = masked_pgd(model, x, y, zeros, eot_samples=2, key=jax.random.key(1), **kw)
  again = masked_pgd(model, x, y, zeros, eot_samples=2, key=jax.random.key(1), **kw)
  np.testing.assert_array_equal(eot, again)                  # the key decides the draws
  assert not np.array_equal(plain, eot)
  assert float(jnp.abs(eot).max()) <= EPS + 1e-7
  assert int((jnp.abs(eot).sum(-1) > 0).sum((1, 2)).max()) <= masks.num_kept(0.1, 100)
  with pytest.raises(ValueError, match="PRNG key"):
    masked_pgd(model, x, y, zeros, eot_samples=2, **kw)
