"""Class-wise SALM on a fixed support: `--config=configs/salm_fixed.py:<arg>`.

One δ per class on pixels chosen once, before min-min: the top 10 % of the
class's summed clean saliency under a surrogate first trained 40 steps on the
clean images. δ starts at ±ε random signs there; min-min then runs 10 rounds
with a fresh surrogate. The default (`configs/salm.py`) re-chooses the pixels
at every PGD step instead. Same args as `configs/salm.py`.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.mode = "class"
  config.noise.mask_schedule = "fixed"     # the support is chosen once, from clean saliency
  config.noise.pretrain_steps = 40         # ... of a surrogate trained on the clean images
  config.noise.keep_pretrained = False     # min-min from a fresh surrogate, as EM's
  config.noise.init = "sign"               # ±ε random signs on the support
  config.noise.max_rounds = 10
  return config
