"""Masked error-minimizing PGD written the usual PyTorch way: the baseline to beat.

This is how EM's reference code (Huang et al. 2021, `min_min_attack`) runs a
round, with SALM's top-k masks added the obvious way: a Python loop over the
steps, one forward and one `torch.autograd.grad` to δ per step, the saliency
|grad| summed over channels, the top k = floor(ratio·H·W) pixels of each δ,
a signed step on them, the ε-ball clamp, and at the end of the round each δ
cut to its own k largest pixels. Images are NCHW (PyTorch's default).

It computes what `salm_jax.noise.salm.pgd.masked_pgd` computes with
mask_schedule='step', so the two are timed on equal work:

  * class-wise (`groups` given, the default on single-label data): δ is
    (G, C, H, W), image i uses δ[groups[i]], clipped to [0, 1] where it is
    applied; a group's gradient sums over its images;
  * sample-wise (`groups=None`, multi-label data): δ is (B, C, H, W) and
    x + δ is kept in [0, 1] after every step.

Ties pick the lower row-major pixel index, as `lax.top_k` does, and the clip
is differentiated as `jnp.clip` is (half the gradient where x + δ sits
exactly on 0 or 1), so the two give the same δ up to float rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from salm_jax.noise.salm.masks import num_kept


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor, multilabel: bool):
  if multilabel:
    return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").mean(1)
  return F.cross_entropy(logits, labels[:, 0].long(), reduction="none")


def clip01(x: torch.Tensor) -> torch.Tensor:
  """clip(x, 0, 1) with `jnp.clip`'s gradient: ties with a bound get half."""
  return torch.minimum(torch.maximum(x, x.new_zeros(())), x.new_ones(()))


def topk_mask(scores: torch.Tensor, ratio: float, ties: torch.Tensor | None = None) -> torch.Tensor:
  """(N, 1, H, W) float mask of the top floor(ratio·H·W) pixels of each (N, H, W) score map.

  Stable sorts: equal scores go to the larger `ties`, then to the lower flat
  index; NaN ranks last.
  """
  n, h, w = scores.shape
  flat = scores.reshape(n, h * w)
  flat = flat.masked_fill(flat.isnan(), float("-inf"))
  if ties is None:  # the step masks: one stable sort
    idx = torch.sort(flat, dim=1, descending=True, stable=True).indices
  else:  # by the second key first, then stably by the first
    order = torch.sort(ties.reshape(n, h * w), dim=1, descending=True, stable=True).indices
    keyed = torch.gather(flat, 1, order)
    idx = torch.gather(order, 1, torch.sort(keyed, dim=1, descending=True, stable=True).indices)
  idx = idx[:, :num_kept(ratio, h * w)]
  return torch.zeros_like(flat).scatter_(1, idx, 1.0).reshape(n, 1, h, w)


def project_to_topk(delta: torch.Tensor, ratio: float, ties: torch.Tensor | None = None):
  """Keeps each δ's k largest-|δ| pixels (Σ over channels), ties by `ties`; zeroes the rest."""
  return delta * topk_mask(delta.abs().sum(1), ratio, ties)


def _gradient(model, images, labels, delta, groups, multilabel: bool) -> torch.Tensor:
  """∇_δ of the loss summed over the batch (each group's gradient sums over its images)."""
  delta = delta.detach().requires_grad_(True)
  inputs = images + delta if groups is None else clip01(images + delta[groups])
  loss = per_example_loss(model(inputs), labels, multilabel).sum()
  grad, = torch.autograd.grad(loss, delta)
  return grad


def masked_pgd(model, images, labels, delta, *, ratio: float, epsilon: float, step_size: float,
               steps: int, groups: torch.Tensor | None = None, multilabel: bool = False):
  """`steps` masked error-minimizing steps, then the top-k projection (±ε ties by the
  last step's saliency); (δ, union of masks).

  `model` must be in eval mode. `delta` is (G, C, H, W) with `groups` (B,)
  int64, else (B, C, H, W); the union of the step masks is (G | B, H, W) bool.
  """
  delta = delta.detach().clone()
  union = torch.zeros(delta.shape[0], *delta.shape[2:], dtype=torch.bool, device=delta.device)
  saliency = None
  for _ in range(steps):
    grad = _gradient(model, images, labels, delta, groups, multilabel)
    with torch.no_grad():
      saliency = grad.abs().sum(1)
      mask = topk_mask(saliency, ratio)
      delta = torch.clamp(delta - step_size * mask * grad.sign(), -epsilon, epsilon)
      if groups is None:
        delta = torch.clamp(images + delta, 0.0, 1.0) - images
      union |= mask[:, 0].bool()
  return project_to_topk(delta, ratio, saliency), union
