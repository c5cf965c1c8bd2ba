"""The bi-level min-min generator written the usual PyTorch way: the end-to-end baseline.

The loop of `salm_jax.noise.salm.generator.generate` (EM's loop with SALM's
masked steps) as the shipped default runs it, in PyTorch. Each round:

  1. trains the surrogate `train_steps` minibatches of `batch_size` on
     clip(x + δ, 0, 1) (SGD, momentum, PyTorch weight decay; minibatches are
     consecutive slices of fresh permutations of the images);
  2. sets every BatchNorm's statistics to the exact batch statistics of
     `bn_recalibration` random perturbed images, as the salm_jax surrogate
     does (PyTorch keeps the unbiased variance, a factor 1 + 1/(N·H·W) off);
  3. runs one masked PGD round (`torch_pgd.masked_pgd`) over the whole set,
     in as few batches of at most `pgd_batch_size` as the generator uses,
     the surrogate in eval mode;
  4. measures the surrogate's accuracy on clip(x + δ, 0, 1) and stops once it
     reaches `stop_accuracy` after `min_rounds` rounds, or after `max_rounds`.

Noise is class-wise (noise.mode 'auto' or 'class': one δ per class, δ[label]
for each image) or per image ('sample'), from zeros, masks re-chosen at every
step: the default of `configs/salm.py` on single-label data, which is all
this baseline trains for (softmax cross-entropy).
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from benchmarks import torch_pgd


def check_settings(noise) -> None:
  """Raises unless the config asks for what this baseline implements."""
  if noise.mode not in ("auto", "class", "sample") or noise.mask_schedule != "step" or (
      noise.get("pretrain_steps", 0) or noise.init not in ("auto", "zeros")
      or (noise.init == "auto" and noise.mask_ratio >= 1.0)):
    raise ValueError("The PyTorch baseline implements mode auto/class/sample on single-label "
                     "data, mask_schedule='step', zero init and no pretraining only.")
  if noise.get("budget", "linf") != "linf":
    raise ValueError("The PyTorch baseline takes epsilon as the L∞ bound (budget='linf').")


def _expand(delta: torch.Tensor, groups: torch.Tensor | None, idx) -> torch.Tensor:
  """The δ that images `idx` see: their class's, or their own."""
  return delta[groups[idx]] if groups is not None else delta[idx]


def _recalibrate(model, inputs: torch.Tensor) -> None:
  """Exact batch statistics of `inputs` in every BatchNorm (momentum=None: cumulative mean)."""
  momenta = {}
  for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      momenta[m] = m.momentum
      m.reset_running_stats()
      m.momentum = None
  model.train()
  with torch.no_grad():
    model(inputs)
  for m, momentum in momenta.items():
    m.momentum = momentum


@contextlib.contextmanager
def _frozen(model):
  """Eval mode and no parameter gradients (PGD differentiates δ only)."""
  model.eval()
  params = [p for p in model.parameters() if p.requires_grad]
  for p in params:
    p.requires_grad_(False)
  try:
    yield
  finally:
    for p in params:
      p.requires_grad_(True)


def _batches(n: int, cap: int):
  """Slices covering range(n) in the generator's balanced batch sizes."""
  calls = -(-n // min(cap, n))
  batch = -(-n // calls)
  return [slice(s, min(s + batch, n)) for s in range(0, n, batch)]


def _accuracy(model, images, labels, delta, groups, cap: int) -> float:
  correct = 0
  with _frozen(model), torch.no_grad():
    for s in _batches(len(images), cap):
      x = torch.clamp(images[s] + _expand(delta, groups, s), 0.0, 1.0)
      correct += int((model(x).argmax(1) == labels[s, 0]).sum())
  return correct / len(images)


def _train(model, opt, images, labels, delta, groups, idx: torch.Tensor) -> tuple[float, float]:
  """`len(idx)` SGD steps on the minibatches idx[s]; mean loss and accuracy."""
  model.train()
  losses, accs = [], []
  for batch in idx:
    x = torch.clamp(images[batch] + _expand(delta, groups, batch), 0.0, 1.0)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels[batch, 0])
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
    accs.append(float((logits.argmax(1) == labels[batch, 0]).float().mean()))
  return float(np.mean(losses)), float(np.mean(accs))


def _pgd_pass(model, images, labels, delta, groups, union, noise) -> None:
  """One PGD round over all images, batch by batch; δ and the union updated in place."""
  kw = dict(ratio=noise.mask_ratio, epsilon=noise.epsilon, step_size=noise.step_size,
            steps=noise.pgd_steps)
  with _frozen(model):
    for s in _batches(len(images), noise.pgd_batch_size):
      if groups is None:
        delta[s], m = torch_pgd.masked_pgd(model, images[s], labels[s], delta[s], **kw)
        union[s] |= m
      else:  # each batch moves every class's δ, the next batch starts from it
        delta[:], m = torch_pgd.masked_pgd(model, images[s], labels[s], delta, groups=groups[s],
                                           **kw)
        union |= m


def _permutations(n: int, count: int, gen: torch.Generator) -> torch.Tensor:
  """`count` indices: consecutive slices of fresh permutations of range(n)."""
  return torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-count // n))])[:count]


def _round(model, opt, x, y, groups, delta, union, noise, sur_cfg, gen, r: int) -> dict:
  """Training, BatchNorm statistics, the PGD round, the stop test's accuracy."""
  start = time.time()
  idx = _permutations(len(x), noise.train_steps * sur_cfg.batch_size, gen)
  loss, train_acc = _train(model, opt, x, y, delta, groups,
                           idx.reshape(noise.train_steps, sur_cfg.batch_size))
  if sur_cfg.bn_recalibration:
    idx = _permutations(len(x), min(sur_cfg.bn_recalibration, len(x)), gen)
    _recalibrate(model, torch.clamp(x[idx] + _expand(delta, groups, idx), 0.0, 1.0))
  _pgd_pass(model, x, y, delta, groups, union, noise)
  accuracy = _accuracy(model, x, y, delta, groups, noise.pgd_batch_size)
  return {"round": r + 1, "accuracy": accuracy, "train_loss": loss, "train_accuracy": train_acc,
          "frac_masked": float(union.float().mean()), "seconds": time.time() - start}


def generate(model, images: np.ndarray, labels: np.ndarray, noise, sur_cfg, *,
             num_classes: int, seed: int = 0):
  """(per-image δ NHWC float32, per-image union mask, history); `model` is trained in place.

  `noise` and `sur_cfg` are the config's `noise` and `surrogate` blocks;
  `labels` (N, 1) class indices below `num_classes`.
  """
  check_settings(noise)
  gen = torch.Generator().manual_seed(seed)
  x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
  y = torch.from_numpy(labels.astype(np.int64))
  groups = y[:, 0] if noise.mode in ("auto", "class") else None
  delta = torch.zeros((num_classes if groups is not None else len(x),) + x.shape[1:])
  union = torch.zeros(delta.shape[0], *x.shape[2:], dtype=torch.bool)
  opt = torch.optim.SGD(model.parameters(), lr=sur_cfg.lr, momentum=sur_cfg.momentum,
                        weight_decay=sur_cfg.weight_decay)
  history = []
  for r in range(noise.max_rounds):
    history.append(_round(model, opt, x, y, groups, delta, union, noise, sur_cfg, gen, r))
    if len(history) >= noise.min_rounds and history[-1]["accuracy"] >= noise.stop_accuracy:
      break
  if groups is None:
    return delta.numpy().transpose(0, 2, 3, 1), union.numpy(), history
  per_image = torch.clamp(x + delta[groups], 0.0, 1.0) - x
  return per_image.numpy().transpose(0, 2, 3, 1), union[groups].numpy(), history
