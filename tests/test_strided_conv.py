"""The phase-split stride-2 convolution: same values and gradients as lax's, any kernel and padding."""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from salm_jax.models import strided_conv

DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("size,kernel,padding", [
    (28, 3, ((1, 1), (1, 1))), (7, 3, ((1, 1), (1, 1))), (14, 1, ((0, 0), (0, 0))),
    (9, 7, ((3, 3), (3, 3))), (10, 3, "SAME"), (11, 4, "VALID"), (8, 2, ((0, 1), (1, 0)))])
def test_matches_lax_and_its_gradients(size, kernel, padding):
  k1, k2, k3 = jax.random.split(jax.random.key(size * 31 + kernel), 3)
  x = jax.random.normal(k1, (2, size, size + 1, 3))
  w = jax.random.normal(k2, (kernel, kernel, 3, 5))

  def ours(x, w):
    return strided_conv.conv_general_dilated(x, w, (2, 2), padding, dimension_numbers=DN)

  def ref(x, w):
    return lax.conv_general_dilated(x, w, (2, 2), padding, dimension_numbers=DN)
  y, y_ref = ours(x, w), ref(x, w)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(k3, y.shape)
  loss = lambda f: lambda x, w: jnp.sum(f(x, w) * g)
  for a, b in zip(jax.jit(jax.grad(loss(ours), (0, 1)))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_other_convolutions_fall_back_to_lax():
  x, w = jnp.ones((1, 8, 8, 2)), jnp.ones((3, 3, 2, 4))
  for strides in ((1, 1), (3, 3)):
    y = strided_conv.conv_general_dilated(x, w, strides, "SAME", dimension_numbers=DN)
    np.testing.assert_allclose(y, lax.conv_general_dilated(x, w, strides, "SAME",
                                                           dimension_numbers=DN))
