"""The OPS baseline (One-Pixel Shortcut, Wu et al., ICLR 2023): `salm_jax/noise/ops.py`.

Model-free and class-wise: one pixel per image (`noise.ops.pixels`) set to a
corner of the colour cube, unbounded in L∞ (`noise.ops.epsilon` = 1.0).
The surrogate fields are unused; the victims are SALM's. Same args as
`configs/salm.py`.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  return salm.method_config(arg, "ops")
