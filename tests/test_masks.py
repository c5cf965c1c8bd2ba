"""topk_mask: exactly k pixels, deterministic ties, clear errors for bad ratios."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salm_jax.noise.salm import masks


@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.3, 0.5, 0.99, 1.0])
def test_keeps_exactly_k_on_random_scores(ratio):
  scores = jax.random.normal(jax.random.key(0), (5, 9, 7))
  mask = masks.topk_mask(scores, ratio)
  k = max(1, math.floor(round(ratio * 63, 9)))
  chex.assert_shape(mask, (5, 9, 7))
  chex.assert_type(mask, bool)
  np.testing.assert_array_equal(mask.sum((1, 2)), k)
  # The kept pixels are the largest ones.
  kth = jnp.sort(scores.reshape(5, -1), axis=1)[:, -k]
  assert bool(jnp.all(jnp.where(mask, scores, jnp.inf) >= kth[:, None, None]))


def test_ties_keep_exactly_k_and_prefer_lower_index():
  scores = jnp.zeros((2, 4, 4))
  mask = masks.topk_mask(scores, 0.25)
  np.testing.assert_array_equal(mask.sum((1, 2)), 4)
  expected = np.zeros((4, 4), bool)
  expected[0] = True  # the first four flat (row-major) indices
  np.testing.assert_array_equal(mask[0], expected)
  # Partial ties: two pixels tie for the last place; the lower index wins.
  s = np.zeros((1, 2, 3), np.float32)
  s[0, 0, 2] = s[0, 1, 1] = 5.0
  s[0, 1, 2] = 9.0
  mask = masks.topk_mask(jnp.asarray(s), 2 / 6)
  np.testing.assert_array_equal(np.argwhere(mask[0]), [[0, 2], [1, 2]])


def test_a_tie_score_orders_equal_scores_before_the_index():
  s = jnp.ones((1, 2, 3))                          # every pixel ties on the first key
  t = jnp.array([[[0.0, 5.0, 1.0], [7.0, 5.0, 0.0]]])
  mask = masks.topk_mask(s, 3 / 6, ties=t)
  np.testing.assert_array_equal(np.argwhere(mask[0]), [[0, 1], [1, 0], [1, 1]])
  s = s.at[0, 0, 0].set(2.0)                       # the first key still wins
  mask = masks.topk_mask(s, 1 / 6, ties=t)
  np.testing.assert_array_equal(np.argwhere(mask[0]), [[0, 0]])
  # Without a tie score, or with equal ones, the lower index wins.
  np.testing.assert_array_equal(masks.topk_mask(jnp.ones((1, 2, 3)), 0.5, ties=jnp.zeros(
      (1, 2, 3))), masks.topk_mask(jnp.ones((1, 2, 3)), 0.5))


def test_project_to_topk_breaks_ties_by_the_tie_score():
  delta = jnp.full((1, 3, 3, 1), 8 / 255)           # saturated everywhere, as after a round
  sal = jnp.arange(9.0).reshape(1, 3, 3)          # most salient: the last pixels
  out = masks.project_to_topk(delta, 2 / 9, ties=sal)
  np.testing.assert_array_equal(np.argwhere(out[0, ..., 0] != 0), [[2, 1], [2, 2]])
  out = masks.project_to_topk(delta, 2 / 9)
  np.testing.assert_array_equal(np.argwhere(out[0, ..., 0] != 0), [[0, 0], [0, 1]])


def test_nan_scores_rank_last():
  s = jnp.array([[[jnp.nan, 1.0], [2.0, jnp.nan]]])
  mask = masks.topk_mask(s, 0.5)
  np.testing.assert_array_equal(mask[0], [[False, True], [True, False]])


def test_one_pixel_and_ratio_one():
  np.testing.assert_array_equal(masks.topk_mask(jnp.ones((3, 1, 1)), 0.01), True)
  np.testing.assert_array_equal(masks.topk_mask(jnp.arange(8.).reshape(2, 2, 2), 1.0), True)


def test_k_is_immune_to_float_noise():
  assert 0.07 * 100 > 7  # the trap
  assert masks.num_kept(0.07, 100) == 7
  assert 0.29 * 100 < 29  # and its mirror image
  assert masks.num_kept(0.29, 100) == 29
  assert masks.num_kept(0.1, 784) == 78  # at most 10 %: 78 of 784 pixels, not 79


@pytest.mark.parametrize("ratio", [0, 0.0, -0.1, 1.0001, 2, float("nan"), float("inf")])
def test_invalid_ratio_raises_value_error(ratio):
  with pytest.raises(ValueError, match="mask_ratio"):
    masks.topk_mask(jnp.ones((1, 2, 2)), ratio)


@pytest.mark.parametrize("ratio", ["0.1", None, True])
def test_non_number_ratio_raises_type_error(ratio):
  with pytest.raises(TypeError, match="mask_ratio"):
    masks.check_ratio(ratio)


def test_wrong_rank_scores_raise():
  with pytest.raises(ValueError, match=r"\(B, H, W\)"):
    masks.topk_mask(jnp.ones((2, 2)), 0.5)


def test_project_to_topk_bounds_l0():
  delta = jax.random.normal(jax.random.key(1), (4, 6, 6, 3))
  out = masks.project_to_topk(delta, 0.2)
  touched = (out != 0).any(-1).sum((1, 2))
  assert int(touched.max()) <= masks.num_kept(0.2, 36)
  kept = (out != 0)
  np.testing.assert_array_equal(np.asarray(out)[kept], np.asarray(delta)[kept])
