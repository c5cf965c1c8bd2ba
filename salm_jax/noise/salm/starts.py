"""A transferable start for min-min: AR or LSP noise on SALM's own support.

AR (Sandoval-Segura et al., 2022) and LSP (Yu et al., 2022) noise transfer
across architectures in the literature without any model. With
`noise.init='ar'` or `'lsp'`, SALM starts from such a pattern (one per class,
or one per image for per-image noise), keeps its k = floor(ratio·H·W) largest
pixels, scales it so that its largest change is ε, and runs min-min from
there. It asks whether the optimization keeps, strengthens or weakens a
start that already transfers. The patterns come from the baselines' own
modules (`noise.ar`, `noise.lsp` blocks, `config.seed`).
"""
from __future__ import annotations

import numpy as np

from salm_jax.noise.baselines import ar
from salm_jax.noise.baselines import lsp
from salm_jax.noise.salm import masks as masks_lib

PATTERNS = {"ar": ar, "lsp": lsp}


def transfer_start(config, images: np.ndarray, labels: np.ndarray, *, task: str,
                   num_classes: int, groups: np.ndarray | None) -> np.ndarray:
  """δ to start from: (K, H, W, C) for class-wise noise (`groups`), else (N, H, W, C)."""
  module, noise = PATTERNS[config.noise.init], config.noise
  if groups is not None:  # one pattern per class, drawn on a mid-gray canvas (nothing clips)
    canvas = np.full((num_classes,) + images.shape[1:], 0.5, np.float32)
    classes = np.arange(num_classes, dtype=np.int64)[:, None]
    pattern = module.make_noise(config, canvas, classes, task=task, num_classes=num_classes)[0]
  else:
    pattern = module.make_noise(config, images, labels, task=task, num_classes=num_classes)[0]
  sparse = np.asarray(masks_lib.project_to_topk(pattern, float(noise.mask_ratio)))
  peak = np.abs(sparse).reshape(len(sparse), -1).max(1)
  delta = sparse * (float(noise.epsilon) / np.maximum(peak, 1e-12))[:, None, None, None]
  if groups is None:
    delta = np.clip(images + delta, 0.0, 1.0) - images
  return delta.astype(np.float32)
