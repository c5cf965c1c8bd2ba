"""The noise side: how protective noise is made.

  salm/       SALM's core: saliency, top-k masks, the masked min-min PGD round,
              the surrogate, the generator (EM is mask_ratio=1), and its options
              (augment.py: expectation over crops and flips; starts.py: a
              transferable start)
  baselines/  what SALM is compared with: OPS, AR, LSP, error-maximizing noise,
              and the random-sign control
  textures/   model-free class patterns: the lattice and the flattest-pixel patterns
  methods.py  `config.noise.method` -> one of the above, for `protect`
  budget.py   the L∞ bound, or one derived from a PSNR
  blocks.py   a model-free method's own `config.noise.<name>` block

Import the modules themselves (`from salm_jax.noise.salm import pgd`); the public
functions are also re-exported by `salm_jax`.
"""
