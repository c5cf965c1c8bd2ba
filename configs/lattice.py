"""Class-wise sparse textures, ±ε dots on a lattice: `salm_jax/noise/lattice.py`.

Model-free: one pixel in every `noise.lattice.period`² cell (6.25 % at the
default 4), one sign tile per class repeated over the whole image
(`noise.lattice.pattern`: onesided, the default; antipodal), ±`noise.epsilon`.
Same args as `configs/salm.py`.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  return salm.method_config(arg, "lattice")
