"""The surrogate: the model the min-min noise is shaped against.

It is an NNX model kept in functional form, so every compiled function stays
pure: `graphdef` (static structure) plus a state dict
{'params', 'rest' (BatchNorm statistics...), 'opt'}. Training follows EM's
code: SGD, momentum 0.9, weight decay 5e-4 (added to the gradient, PyTorch
style), lr 0.1, on clip(x + δ, 0, 1). PGD sees it in inference mode, with
BatchNorm's running statistics, so each image's noise depends on that image only.
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


def create(cfg: ml_collections.ConfigDict, *, task: str, num_classes: int, in_channels: int,
           image_size: int, seed: int) -> tuple[Surrogate, State]:
  kwargs = {"width": cfg.width} if cfg.get("width") else {}
  model = create_model(cfg.model, num_classes=num_classes, in_channels=in_channels,
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
  model = nnx.merge(sur.graphdef, state["params"], state["rest"], copy=True)
  for _, module in nnx.iter_modules(model):
    if isinstance(module, nnx.BatchNorm):
      module.momentum = 0.0
  model.train()
  model(images)
  return {**state, "rest": nnx.state(model, nnx.Not(nnx.Param))}


def train_steps(sur: Surrogate, state: State, images, labels, delta):
  """`train_step` over stacked minibatches (S, B, ...) with `lax.scan`; mean metrics."""
  def body(state, batch):
    return train_step(sur, state, *batch)
  unroll = True if jax.default_backend() == "cpu" else 1  # see pgd.default_unroll
  state, metrics = jax.lax.scan(body, state, (images, labels, delta), unroll=unroll)
  return state, jax.tree.map(jnp.mean, metrics)

