"""Linearly separable perturbations (Yu et al., KDD 2022): `--config=configs/lsp.py:<arg>`.

Model-free and class-wise: synthetic points of one Gaussian cluster per class,
each feature spread over an 8×8 block, scaled to an RMS of 6/255 and added to
every pixel (`salm_jax/noise/baselines/lsp.py`). Dense noise on every pixel, visible as a
faint checkerboard of 8×8 tiles (about ±6/255 each, 34 dB on the phantom).
What undoes it: not measured here. Same args as `configs/salm.py`.
"""
from configs import salm
from salm_jax.noise.baselines import lsp


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "lsp"
  config.noise.lsp = lsp.default_config()  # patch 8, RMS 6/255, class_sep 10
  return config
