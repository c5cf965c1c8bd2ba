"""The EM baseline (Huang et al., ICLR 2021): SALM with every pixel unmasked.

mask_ratio = 1.0 with uniform init in [-ε, ε] is exactly error-minimizing
noise; it runs the same code path as SALM. Same args as `configs/salm.py`.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  config = salm.build(arg, sparse=False)  # per-image noise on every pixel
  config.noise.mask_ratio = 1.0
  config.noise.init = "uniform"
  return config
