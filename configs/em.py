"""The EM baseline (Huang et al., ICLR 2021): `--config=configs/em.py:<arg>`.

Error-minimizing noise on every pixel: SALM with mask_ratio = 1, one δ per
image, started uniform in [-ε, ε]. It runs SALM's code path, so EM is a
setting, not a second implementation. The class-wise variant is the default
config at mask_ratio = 1 (the end point of the mask-ratio ablation). Same
args as `configs/salm.py`.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.mask_ratio = 1.0            # every pixel
  config.noise.mode = "sample"             # one δ per image, EM's main setting
  config.noise.init = "uniform"
  config.noise.train_steps = 2             # surrogate steps per round, as measured on CPU
  config.noise.max_rounds = 15
  return config
