"""Model-free class-wise textures: one fixed pattern per class, no surrogate.

  lattice.py        ±ε dots on a regular lattice (`configs/lattice.py`)
  flat_support.py   ±ε patterns on the locally flattest pixels (`configs/flat.py`)
  class_patterns.py the checks the class-wise patterns share
  ssim_floor.py     the per-image SSIM floor a lattice may keep
  texture_class.py  which class a one-sided texture leaves bare
"""
