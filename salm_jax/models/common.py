"""What every model in the zoo shares: its input convention.

All models take NHWC float images in [0, 1], the space the noise lives in,
and normalize inside with MedMNIST's mean 0.5 / std 0.5. So the surrogate, the
victims and the noise generator never disagree on preprocessing.
"""
import jax

MEAN = 0.5
STD = 0.5


def normalize(x: jax.Array) -> jax.Array:
  return (x - MEAN) / STD
