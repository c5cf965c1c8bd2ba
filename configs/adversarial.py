"""Class-wise error-maximizing sparse noise: `salm_jax/noise/adversarial.py`.

SALM's class-shared support (top `noise.mask_ratio` of each class's clean
saliency) with one δ per class pushed towards the next class by a surrogate
trained on the clean images (`noise.adversarial.pretrain_steps`), for
`noise.adversarial.passes` PGD passes; no min-min. Same args as
`configs/salm.py` (ε, step size, steps per batch, ratio and surrogate are
its fields).
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  return salm.method_config(arg, "adversarial")
