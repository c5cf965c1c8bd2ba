"""Class-wise ±ε patterns on the flattest pixels: `salm_jax/noise/flat_support.py`.

Model-free: `noise.mask_ratio` of the pixels where the images are locally
flattest, one sign pattern per class (`noise.flat.pattern`: onesided, the
default; antipodal; independent), ±`noise.epsilon`. Same args as
`configs/salm.py`. A center-cropping victim is not fooled by it
(docs/RESULTS.md).
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  return salm.method_config(arg, "flat")
