"""The library's XLA:CPU compiler options: applied on CPU, and the same numbers as XLA's defaults."""
import jax
import jax.numpy as jnp
import numpy as np

from salm_jax import xla_cpu


def test_options_on_cpu_and_extra_options_merge():
  assert jax.default_backend() == "cpu"
  opts = xla_cpu.options({"xla_backend_optimization_level": 0})
  assert opts == {**xla_cpu.CPU_OPTIONS, "xla_backend_optimization_level": 0}


def test_conv_round_matches_xla_defaults():
  """A convolution's input gradient under the library's options equals XLA's default lowering."""
  k1, k2 = jax.random.split(jax.random.key(0))
  x = jax.random.uniform(k1, (4, 12, 12, 3))
  w = jax.random.normal(k2, (3, 3, 3, 8)) * 0.3

  def loss(x):
    y = jax.lax.conv_general_dilated(x, w, (2, 2), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.tanh(y) ** 2)
  grad = jax.grad(loss)
  ours = xla_cpu.jit(grad)(x)
  ref = jax.jit(grad)(x)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-4, atol=1e-5)


def test_an_xla_without_the_option_gets_its_defaults(monkeypatch):
  """A renamed or removed experimental flag must not break every compilation."""
  monkeypatch.setattr(xla_cpu, "CPU_OPTIONS", {"xla_no_such_option_in_any_xla": 1})
  xla_cpu._cpu_options_known.cache_clear()
  try:
    assert xla_cpu.options() is None
    assert float(xla_cpu.jit(lambda x: x * 2)(1.5)) == 3.0
  finally:
    xla_cpu._cpu_options_known.cache_clear()
