"""A one-sided sparse texture: `--config=configs/lattice.py:<arg>`.

Model-free: bright dots of up to 18/255 on one pixel in every 4×4 cell
(6.25 %) of every image of each class but the one with the most local
contrast (`salm_jax/noise/textures/lattice.py`); the dots are lowered on the
images where they would take SSIM below 0.95. Above the 8/255 budget, and
visible: a regular grid of bright dots in dark regions. A 3×3 median filter,
a blur or JPEG over the training images undoes most of it. Same args as
`configs/salm.py`.
"""
from configs import salm
from salm_jax.noise.textures import lattice


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "lattice"
  config.noise.mask_ratio = 0.0625         # one pixel in every 4×4 cell
  config.noise.epsilon = 18 / 255          # 35 dB on the textured images
  config.noise.lattice = lattice.default_config()
  config.noise.lattice.bare = "busiest"    # the class with the most local contrast stays bare
  config.noise.lattice.min_ssim = 0.95     # dots lowered where SSIM would fall below 0.95
  return config
