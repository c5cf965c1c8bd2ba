"""Autoregressive poisons (Sandoval-Segura et al., NeurIPS 2022): `--config=configs/ar.py:<arg>`.

Model-free and class-wise: each image gets a fresh sample of its class's 3×3
autoregressive process, scaled to L2 = 1 and added to every pixel
(`salm_jax/noise/baselines/ar.py`). Dense noise on every pixel, visible as
fine diagonal or vertical ripples: 9/255 RMS on 28 px gray images, single
pixels up to about 60/255, about 31 dB on the phantom. What undoes it: not
measured here. Same args as `configs/salm.py`.
"""
from configs import salm
from salm_jax.noise.baselines import ar


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "ar"
  config.noise.ar = ar.default_config()  # L2 = 1, canvas image + 4, crop 4
  return config
