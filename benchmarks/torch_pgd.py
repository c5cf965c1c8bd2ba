"""Masked error-minimizing PGD written the usual PyTorch way: the baseline to beat.

This is how EM's reference code (Huang et al. 2021, `min_min_attack`) runs a
round, with SALM's top-k mask added the obvious way: a Python loop over the
steps, one forward and one `torch.autograd.grad` to the input per step, the
saliency |grad| summed over channels, `topk` per image, a signed step on the
mask, then the ε-ball and [0, 1] clamps. Images are NCHW (PyTorch's default).
It computes what `salm_jax.noise.pgd.masked_pgd` computes with
mask_schedule='step', support='union', so the two are timed on equal work.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor, multilabel: bool):
  if multilabel:
    return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").mean(1)
  return F.cross_entropy(logits, labels[:, 0].long(), reduction="none")


def topk_mask(grad: torch.Tensor, ratio: float) -> torch.Tensor:
  """(B, 1, H, W) float mask of the k most salient pixels (|grad| summed over channels)."""
  b, _, h, w = grad.shape
  k = max(1, min(h * w, math.ceil(round(ratio * h * w, 9))))
  saliency = grad.abs().sum(1).reshape(b, h * w)
  idx = saliency.topk(k, dim=1).indices
  return torch.zeros_like(saliency).scatter_(1, idx, 1.0).reshape(b, 1, h, w)


def masked_pgd(model, images, labels, delta, *, ratio: float, epsilon: float, step_size: float,
               steps: int, multilabel: bool = False):
  """`steps` masked error-minimizing steps; returns (δ, union of masks (B, H, W) bool).

  `model` must be in eval mode. The loss is summed over the batch, so each
  image's step depends on that image only (as in salm_jax).
  """
  delta = delta.detach().clone()
  union = torch.zeros(images.shape[0], 1, *images.shape[2:], dtype=torch.bool,
                      device=images.device)
  for _ in range(steps):
    delta.requires_grad_(True)
    loss = per_example_loss(model(images + delta), labels, multilabel).sum()
    grad, = torch.autograd.grad(loss, delta)
    with torch.no_grad():
      mask = topk_mask(grad, ratio)
      delta = delta - step_size * mask * grad.sign()
      delta = torch.clamp(delta, -epsilon, epsilon)
      delta = torch.clamp(images + delta, 0.0, 1.0) - images
      union |= mask.bool()
  return delta.detach(), union[:, 0]
