"""What SALM is compared with, each a `config.noise.method` of its own.

  ops.py           One-Pixel Shortcut (Wu et al., ICLR 2023), model-free
  random_noise.py  the control: random ±ε signs on a given (or random) support
  adversarial.py   class-wise error-maximizing noise on SALM's class support
  ar.py            autoregressive poisons (Sandoval-Segura et al., NeurIPS 2022), model-free
  lsp.py           linearly separable synthetic noise (Yu et al., KDD 2022), model-free
  l2_scale.py      AR's and LSP's L2 budget: scale each sample, clip to the image box

EM (Huang et al., ICLR 2021) is SALM with mask_ratio=1 (`configs/em.py`), not a module.
"""
