"""The surrogate: the model the min-min noise is shaped against.

It is an NNX model kept in functional form, so every compiled function stays
pure: `graphdef` (static structure) plus a state dict
{'params', 'rest' (BatchNorm statistics...), 'opt'}. Training follows EM's
code: SGD, momentum 0.9, weight decay 5e-4 (added to the gradient, PyTorch
style), lr 0.1, on clip(x + δ, 0, 1). PGD sees it in inference mode, with
BatchNorm's running statistics, so each image's noise depends on that image only.

`surrogate.ensemble` names several models instead ('small_cnn:16',
'resnet18:16', ...): each member trains on the same minibatches, and PGD and
the saliency see the mean of their logits, in one compiled program.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from salm_jax import tasks
from salm_jax.models import create_model

State = dict[str, Any]


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      model="small_cnn",      # any name of salm_jax.models.model_names()
      width=16,               # base width; 64 is the full ResNet-18
      lr=0.1, momentum=0.9, weight_decay=5e-4,
      batch_size=128,
      bn_recalibration=512,   # images for exact BatchNorm statistics each round (0: off)
      ensemble=(),            # 'model:width' members instead of `model` (mean of logits)
  ))


@dataclasses.dataclass(frozen=True)
class Surrogate:
  """Static half of a surrogate: its structure, optimizer settings and task.

  Hashable by value, so compiled functions built for one surrogate are reused
  by every run with the same structure and settings (sweeps, tests).
  """
  graphdef: Any
  task: str
  lr: float
  momentum: float
  weight_decay: float

  @property
  def tx(self) -> optax.GradientTransformation:
    """SGD with momentum and PyTorch-style weight decay (added to the gradient)."""
    return optax.chain(optax.add_decayed_weights(self.weight_decay),
                       optax.sgd(self.lr, momentum=self.momentum or None))

  def apply(self, state: State, images: jax.Array, train: bool = False):
    """(logits, updated 'rest') for images in [0, 1]."""
    model = nnx.merge(self.graphdef, state["params"], state["rest"], copy=True)
    model.train() if train else model.eval()
    logits = model(images)
    return logits, nnx.state(model, nnx.Not(nnx.Param))

  def logits(self, state: State, images: jax.Array) -> jax.Array:
    """Inference-mode logits: the `apply_fn(variables, images)` of `pgd.masked_pgd`.

    A bound method of a frozen dataclass hashes by value, so it is the same
    static argument for every call with the same surrogate.
    """
    return self.apply(state, images, train=False)[0]

  def logits_fn(self, state: State):
    """A pure inference-mode `images -> logits` for PGD and saliency."""
    return functools.partial(self.logits, state)


@dataclasses.dataclass(frozen=True)
class Ensemble:
  """Several surrogates seen as one: the mean of their logits. Hashable by value."""
  members: tuple[Surrogate, ...]

  @property
  def task(self) -> str:
    return self.members[0].task

  def logits(self, state, images: jax.Array) -> jax.Array:
    return sum(m.logits(s, images) for m, s in zip(self.members, state)) / len(self.members)

  def logits_fn(self, state):
    return functools.partial(self.logits, state)


def check_ensemble(ensemble) -> list[tuple[str, int]]:
  """`surrogate.ensemble` as [(model, width)], every entry 'model:width' or 'model'."""
  out = []
  for entry in ensemble:
    name, _, width = str(entry).partition(":")
    if width and not width.isdigit():
      raise ValueError(f"surrogate.ensemble entries are 'model' or 'model:width'; got {entry!r}.")
    out.append((name, int(width or 0)))
  return out


def create(cfg: ml_collections.ConfigDict, *, task: str, num_classes: int, in_channels: int,
           image_size: int, seed: int):
  """(Surrogate, state), or (Ensemble, tuple of states) with `cfg.ensemble`."""
  members = check_ensemble(cfg.get("ensemble", ()))
  if members:
    made = [_create_one(cfg, name, width, task, num_classes, in_channels, image_size, seed + i)
            for i, (name, width) in enumerate(members)]
    return Ensemble(tuple(m for m, _ in made)), tuple(s for _, s in made)
  return _create_one(cfg, cfg.model, cfg.get("width"), task, num_classes, in_channels,
                     image_size, seed)


def _create_one(cfg, name, width, task, num_classes, in_channels, image_size, seed):
  kwargs = {"width": width} if width else {}
  model = create_model(name, num_classes=num_classes, in_channels=in_channels,
                       image_size=image_size, rngs=nnx.Rngs(seed), **kwargs)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  sur = Surrogate(graphdef, tasks.check_task(task), float(cfg.lr), float(cfg.momentum),
                  float(cfg.weight_decay))
  return sur, {"params": params, "rest": rest, "opt": sur.tx.init(params)}


def train_step(sur: Surrogate, state: State, images, labels, delta):
  """One SGD step on clip(x + δ, 0, 1): `step(state, batch) -> (state, metrics)`."""
  inputs = jnp.clip(images + delta, 0.0, 1.0)

  def loss_fn(params):
    logits, rest = sur.apply({**state, "params": params}, inputs, train=True)
    return tasks.loss(logits, labels, sur.task), (logits, rest)

  (loss, (logits, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  updates, opt = sur.tx.update(grads, state["opt"], state["params"])
  params = optax.apply_updates(state["params"], updates)
  metrics = {"loss": loss, "accuracy": tasks.accuracy(logits, labels, sur.task)}
  return {"params": params, "rest": rest, "opt": opt}, metrics


def recalibrate_batch_norm(sur: Surrogate, state: State, images) -> State:
  """Sets every BatchNorm's running statistics to the exact statistics of `images`.

  PGD and the stop test see the surrogate in inference mode. After a handful
  of SGD steps its running averages (momentum 0.9) still describe older
  weights, and the inference-mode surrogate can sit at chance while the
  training-mode one fits the data: noise shaped against it is no shortcut
  at all. One training-mode pass with momentum 0 over a large batch of
  x + δ ("precise BN") makes inference mode match the weights.
  """
  if isinstance(sur, Ensemble):
    return tuple(recalibrate_batch_norm(m, s, images) for m, s in zip(sur.members, state))
  model = nnx.merge(sur.graphdef, state["params"], state["rest"], copy=True)
  for _, module in nnx.iter_modules(model):
    if isinstance(module, nnx.BatchNorm):
      module.momentum = 0.0
  model.train()
  model(images)
  return {**state, "rest": nnx.state(model, nnx.Not(nnx.Param))}


def train_steps(sur: Surrogate, state: State, images, labels, delta):
  """`train_step` over stacked minibatches (S, B, ...) with `lax.scan`; mean metrics.

  An ensemble trains every member on the same minibatches; its metrics are the
  members' mean.
  """
  if isinstance(sur, Ensemble):
    out = [train_steps(m, s, images, labels, delta) for m, s in zip(sur.members, state)]
    metrics = jax.tree.map(lambda *v: sum(v) / len(v), *[m for _, m in out])
    return tuple(s for s, _ in out), metrics
  def body(state, batch):
    return train_step(sur, state, *batch)
  unroll = True if jax.default_backend() == "cpu" else 1  # see pgd.default_unroll
  state, metrics = jax.lax.scan(body, state, (images, labels, delta), unroll=unroll)
  return state, jax.tree.map(jnp.mean, metrics)

