"""The noise side: how protective noise is made.

  saliency.py   per-pixel |∇δ L|, the ranking that picks where noise may go
  masks.py      top-k pixel masks (per image or shared by a class)
  pgd.py        one compiled round of masked error-minimizing PGD
  surrogate.py  the model the noise is optimized against
  generator.py  the bi-level min-min loop (SALM; EM is mask_ratio=1)
  ops.py        baseline: One-Pixel Shortcut (model-free, class-wise)
  random_noise.py  control: random ±ε signs on SALM's (or a random) support
  methods.py    `config.noise.method` -> one of the above, for `protect`

Import the modules themselves (`from salm_jax.noise import pgd`); the public
functions are also re-exported by `salm_jax`.
"""
