"""Class-wise error-maximizing sparse noise: `--config=configs/adversarial.py:<arg>`.

SALM's class support (the top 10 % of each class's clean saliency) with one
δ per class pushed towards the next class by a surrogate trained on the clean
images, no min-min (`salm_jax/noise/baselines/adversarial.py`). ±8/255 on
10 % of each image, 40 dB. Same args as `configs/salm.py`.
"""
from configs import salm
from salm_jax.noise.baselines import adversarial


def get_config(arg: str = "synthetic"):
  config = salm.get_config(arg)
  config.noise.method = "adversarial"
  config.noise.adversarial = adversarial.default_config()  # 200 clean steps, 5 passes
  return config
