"""salm_jax: sparse unlearnable noise (SALM) for medical image datasets, in JAX.

The public API, as pure functions:
  pixel_saliency(logits_fn, images, labels, ...) -> (B, H, W)
  topk_mask(scores, ratio) -> bool (B, H, W)
  masked_pgd(logits_fn, images, labels, delta, mask_ratio=..., epsilon=...,
             step_size=..., steps=..., ...) -> delta
  generate(config, images, labels, task=..., num_classes=...) -> GeneratorResult
and the stages behind the command line: `salm_jax.protect.protect`,
`salm_jax.evaluation.run_evaluation`, `salm_jax.sweep.run_sweep`,
`salm_jax.report.build_report` (all run by `salm_jax.pipeline.run_all`).
"""
from salm_jax.noise.generator import GeneratorResult, generate
from salm_jax.noise.masks import topk_mask
from salm_jax.noise.pgd import masked_pgd
from salm_jax.noise.saliency import pixel_saliency

__version__ = "0.1.0"

__all__ = ["GeneratorResult", "generate", "masked_pgd", "pixel_saliency", "topk_mask",
           "__version__"]
