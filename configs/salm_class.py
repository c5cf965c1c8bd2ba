"""Class-wise SALM: `configs/salm.py`'s real-data default before lattice textures.

One δ per class on the top 10 % of the class's clean saliency, min-min with a
fresh surrogate, ε = 8/255 (`configs/salm.py::sparse_class_noise`). On the
phantom it is the same as `configs/salm.py:synthetic` (per-image SALM). Same
args as `configs/salm.py`.
"""
from configs import salm


def get_config(arg: str = "synthetic"):
  return salm.method_config(arg, "salm")
