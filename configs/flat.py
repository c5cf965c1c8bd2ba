"""Class-wise ±ε patterns on the flattest pixels: `salm_jax/noise/flat_support.py`.

Model-free: `noise.mask_ratio` of the pixels where the images are locally
flattest, one sign pattern per class (`noise.flat.pattern`: independent,
antipodal or onesided), ±`noise.epsilon`. Same args as `configs/salm.py`.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "flat"
  return config
