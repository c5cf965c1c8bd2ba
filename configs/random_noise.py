"""The random-sign control: `salm_jax/noise/random_noise.py`.

±ε (`noise.epsilon`) with random signs on a random support of
ceil(mask_ratio·H·W) pixels per image, or, with
`--config.noise.random.support_from=<SALM workdir>/protected`, on exactly the
pixels that SALM run changed. Same args as `configs/salm.py`; run it with the
SALM run's `noise.mode`, `noise.splits` and dataset.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  return salm.method_config(arg, "random")
