"""The bi-level min-min generator written the usual PyTorch way: the end-to-end baseline.

The loop of `salm_jax.noise.generator.generate` (itself EM's loop with SALM's
masked steps), line for line in PyTorch: each round trains the surrogate
`train_steps` minibatches on clip(x + δ, 0, 1) (SGD, momentum, PyTorch
weight decay), sets exact BatchNorm statistics on `bn_recalibration`
perturbed images, runs one masked PGD round (`torch_pgd.masked_pgd`) over
the whole set in batches of `pgd_batch_size`, and stops once the surrogate's
accuracy on x + δ reaches `stop_accuracy` after `min_rounds` rounds. Only
sample-wise noise with mask_schedule='step' and support='union' (the
configs' defaults) is written here.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks import torch_pgd


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


def _accuracy(model, images, labels, delta, batch: int) -> float:
  model.eval()
  correct = 0
  with torch.no_grad():
    for s in range(0, len(images), batch):
      x = torch.clamp(images[s:s + batch] + delta[s:s + batch], 0.0, 1.0)
      correct += int((model(x).argmax(1) == labels[s:s + batch, 0]).sum())
  return correct / len(images)


def _train(model, opt, images, labels, delta, idx: torch.Tensor) -> tuple[float, float]:
  """`len(idx)` SGD steps on the minibatches idx[s]; mean loss and accuracy."""
  model.train()
  losses, accs = [], []
  for batch in idx:
    x = torch.clamp(images[batch] + delta[batch], 0.0, 1.0)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels[batch, 0])
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
    accs.append(float((logits.argmax(1) == labels[batch, 0]).float().mean()))
  return float(np.mean(losses)), float(np.mean(accs))


def _pgd_pass(model, images, labels, delta, union, noise) -> None:
  model.eval()
  batch = min(noise.pgd_batch_size, len(images))
  for s in range(0, len(images), batch):
    d, m = torch_pgd.masked_pgd(model, images[s:s + batch], labels[s:s + batch],
                                delta[s:s + batch], ratio=noise.mask_ratio,
                                epsilon=noise.epsilon, step_size=noise.step_size,
                                steps=noise.pgd_steps)
    delta[s:s + batch] = d
    union[s:s + batch] |= m


def generate(model, images: np.ndarray, labels: np.ndarray, noise, sur_cfg, seed: int = 0):
  """(δ NHWC float32, union mask, history) for single-label `labels`; `model` is trained in place.

  `noise` and `sur_cfg` are the config's `noise` and `surrogate` blocks.
  """
  if noise.mask_schedule != "step" or noise.support != "union" or noise.mode != "sample":
    raise ValueError("The PyTorch baseline implements mask_schedule='step', support='union', "
                     "mode='sample' only.")
  gen = torch.Generator().manual_seed(seed)
  x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
  y = torch.from_numpy(labels.astype(np.int64))
  delta = torch.zeros_like(x)
  union = torch.zeros(x.shape[0], *x.shape[2:], dtype=torch.bool)
  opt = torch.optim.SGD(model.parameters(), lr=sur_cfg.lr, momentum=sur_cfg.momentum,
                        weight_decay=sur_cfg.weight_decay)
  history = []
  for r in range(noise.max_rounds):
    start = time.time()
    need = noise.train_steps * sur_cfg.batch_size
    perm = torch.cat([torch.randperm(len(x), generator=gen) for _ in range(-(-need // len(x)))])
    loss, train_acc = _train(model, opt, x, y, delta,
                             perm[:need].reshape(noise.train_steps, sur_cfg.batch_size))
    if sur_cfg.bn_recalibration:
      idx = torch.randperm(len(x), generator=gen)[:sur_cfg.bn_recalibration]
      _recalibrate(model, torch.clamp(x[idx] + delta[idx], 0.0, 1.0))
    _pgd_pass(model, x, y, delta, union, noise)
    accuracy = _accuracy(model, x, y, delta, noise.pgd_batch_size)
    history.append({"round": r + 1, "accuracy": accuracy, "train_loss": loss,
                    "train_accuracy": train_acc, "frac_masked": float(union.float().mean()),
                    "seconds": time.time() - start})
    if len(history) >= noise.min_rounds and accuracy >= noise.stop_accuracy:
      break
  return delta.numpy().transpose(0, 2, 3, 1), union.numpy(), history
