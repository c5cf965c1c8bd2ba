"""Class patterns on the flattest pixels: `--config=configs/flat.py:<arg>`.

Model-free: ±8/255 random signs on the 10 % of the pixels where the images
are locally flattest, one pattern per class, only on the images of every
class but the largest (`salm_jax/noise/textures/flat_support.py`). Invisible
at 40 dB on the textured images; a victim's centre crop removes most of it.
Same args as `configs/salm.py`.
"""
from configs import salm
from salm_jax.noise.textures import flat_support


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "flat"
  config.noise.mode = "class"
  config.noise.flat = flat_support.default_config()  # one-sided: the largest class stays bare
  return config
