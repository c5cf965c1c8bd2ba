"""The random-sign control: `--config=configs/random_noise.py:<arg>`.

Random ±ε signs on the pixels another run changed
(`--config.noise.random.support_from=<workdir>/protected`), or on a random
support of `noise.mask_ratio` of each image: the same budget and support as
the run it controls, without the optimization
(`salm_jax/noise/baselines/random_noise.py`). Run it with that run's dataset,
`noise.mode` and seed. Same args as `configs/salm.py`.
"""
from configs import salm
from salm_jax.noise.baselines import random_noise


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "random"
  config.noise.random = random_noise.default_config()
  return config
