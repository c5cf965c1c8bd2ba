"""The OPS baseline (One-Pixel Shortcut, Wu et al., ICLR 2023): `--config=configs/ops.py:<arg>`.

Model-free and class-wise: one pixel per image, the same position for a
class, set to black or white (`salm_jax/noise/baselines/ops.py`). Unbounded in
L∞ (a full 0↔255 change): one dot an eye finds at once, about 30 dB on a
28 px image; a crop or a 3×3 median filter removes it. Same args as
`configs/salm.py`.
"""
from configs import salm
from salm_jax.noise.baselines import ops


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "ops"
  config.noise.ops = ops.default_config()  # one pixel per class, unbounded
  return config
