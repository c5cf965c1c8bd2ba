"""salm_jax: sparse unlearnable noise (SALM) for medical image datasets, in JAX.

The public API, as pure functions:
  pixel_saliency(apply_fn, variables, images, labels, ...) -> (B, H, W)
  topk_mask(scores, ratio) -> bool (B, H, W)
  masked_pgd(apply_fn, variables, images, labels, delta, mask_ratio=..., epsilon=...,
             step_size=..., steps=..., ...) -> delta
  masked_pgd_fn(logits_fn, images, labels, delta, ...) -> delta   (closure form)
  generate(config, images, labels, task=..., num_classes=...) -> GeneratorResult  (SALM, EM)
  generate_noise(config, images, labels, ...) -> GeneratorResult  (any config.noise.method)
and the stages behind the command line: `salm_jax.protect.protect`,
`salm_jax.evaluation.run_evaluation`, `salm_jax.sweep.run_sweep`,
`salm_jax.report.build_report` (all run by `salm_jax.pipeline.run_all`).
"""
from salm_jax.noise.methods import METHODS, generate_noise
from salm_jax.noise.salm.generator import GeneratorResult, generate
from salm_jax.noise.salm.masks import topk_mask
from salm_jax.noise.salm.pgd import masked_pgd, masked_pgd_fn
from salm_jax.noise.salm.saliency import pixel_saliency

__version__ = "0.1.0"

__all__ = ["GeneratorResult", "METHODS", "generate", "generate_noise", "masked_pgd",
           "masked_pgd_fn", "pixel_saliency", "topk_mask", "__version__"]
