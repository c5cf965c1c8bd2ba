"""The unauthorized trainer: MedMNIST's own training recipe, played faithfully.

Protection is only proven if a victim that trains the way MedMNIST's
benchmark does (Adam at 1e-3, batch 128, learning rate ×0.1 at 50% and 75% of
the epochs, mean/std 0.5 normalization inside the model, cross-entropy or BCE)
fails on clean test data. Test metrics are reported for the last epoch and for
the epoch of best validation AUC, because a poison that is only learned late
in training can be missed by early stopping.

The model is handled functionally: `nnx.split` gives a graph definition and
the parameter / other-state pytrees, one jitted `train_step(state, batch,
key)` updates them, and the epoch is a Python loop over batches. A defense
(`salm_jax.evaluation.defenses`) adds preprocessing, per-batch transforms and PGD inside
the step; labels become soft targets so that mixup and cutmix fit both the
softmax and the sigmoid (multi-label) losses.
"""
from __future__ import annotations

import collections
import functools
import time
from typing import Any, Callable, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
import tqdm

from salm_jax import tasks
from salm_jax import terminal
from salm_jax import xla_cpu
from salm_jax.data.dataset import as_float
from salm_jax.evaluation import defenses as defenses_lib
from salm_jax.evaluation import metrics
from salm_jax.models import create_model


def victim_config() -> ml_collections.ConfigDict:
  """MedMNIST's training recipe (`experiments/MedMNIST2D/train_and_eval_pytorch.py`)."""
  return ml_collections.ConfigDict(dict(
      epochs=100,
      batch_size=128,
      lr=1e-3,
      milestones=(0.5, 0.75),   # fractions of the epochs where lr is multiplied by gamma
      gamma=0.1,
      eval_batch_size=512,
      model_kwargs={"small_cnn": {"width": 16}},  # per-arch options, e.g. width
      # Compile without XLA's expensive optimizations: ~5x faster to compile on
      # CPU, somewhat slower to run. For short CPU runs and tests, not for GPUs.
      fast_compile=False,
  ))


FAST_COMPILE_OPTIONS = {"xla_backend_optimization_level": 0,
                        "xla_llvm_disable_expensive_passes": True}


def _jit(fn, fast_compile: bool, **kwargs):
  return xla_cpu.jit(fn, FAST_COMPILE_OPTIONS if fast_compile else None, **kwargs)


class VictimState(NamedTuple):
  params: Any
  rest: Any        # BatchNorm statistics and any other non-parameter state
  opt_state: Any
  step: jax.Array


def lr_schedule(lr: float, epochs: int, steps_per_epoch: int, milestones, gamma: float):
  """torch's MultiStepLR stepped per epoch, in optimizer steps.

  Milestone epochs are int(fraction × epochs); a milestone at epoch 0 never
  fires (as in torch) and repeated milestones compound (torch's Counter).
  """
  scales = collections.Counter(int(m * epochs) for m in milestones)
  boundaries = {e * steps_per_epoch: gamma ** n for e, n in scales.items() if e > 0}
  return optax.piecewise_constant_schedule(lr, boundaries)


def targets_of(labels: jax.Array, task: str, num_classes: int) -> jax.Array:
  """(B, L) integer labels -> float soft-target rows: one-hot, or the 0/1 labels."""
  if tasks.is_multilabel(task):
    return labels.astype(jnp.float32)
  return jax.nn.one_hot(labels[:, 0], num_classes, dtype=jnp.float32)


def soft_loss(logits: jax.Array, targets: jax.Array, task: str) -> jax.Array:
  """Mean CE against soft targets; equals `tasks.loss` for hard ones."""
  if tasks.is_multilabel(task):
    return optax.sigmoid_binary_cross_entropy(logits, targets).mean()
  return optax.softmax_cross_entropy(logits, targets).mean()


def _apply(graphdef, params, rest, x):
  """Functional forward pass -> (logits, updated non-parameter state)."""
  # copy=True: fresh Variables at this trace level, so BatchNorm may update them
  # inside jax.grad even though `rest` was traced by the enclosing jit.
  model = nnx.merge(graphdef, params, rest, copy=True)
  logits = model(x)
  _, _, new_rest = nnx.split(model, nnx.Param, ...)
  return logits, new_rest


def make_train_step(graphdef, tx: optax.GradientTransformation, task: str, num_classes: int,
                    defense: defenses_lib.Defense, fast_compile: bool = False) -> Callable:
  """The jitted `train_step(state, (images, labels), key) -> (state, metrics)`.

  `graphdef` is the model in train mode. PGD (pgd_at) runs against the current
  weights in train mode; the BatchNorm statistics of its forward passes are
  discarded, only the training forward pass updates them.
  """
  def step(state: VictimState, batch, key):
    x, labels = batch
    targets = targets_of(labels, task, num_classes)
    k_aug, k_adv = jax.random.split(key)
    if defense.has_batch_transform:
      x, targets = defense.batch_transform(x, targets, k_aug)
    attack_loss = lambda xa: soft_loss(_apply(graphdef, state.params, state.rest, xa)[0],
                                       targets, task)
    x = defense.attack(attack_loss, x, k_adv)

    def loss_fn(params):
      logits, rest = _apply(graphdef, params, state.rest, x)
      return soft_loss(logits, targets, task), rest

    (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return VictimState(params, rest, opt_state, state.step + 1), {"loss": loss}

  return _jit(step, fast_compile, donate_argnums=0)


def make_scores_fn(graphdef, task: str, fast_compile: bool = False) -> Callable:
  """Jitted (params, rest, x) -> MedMNIST `y_score`, for an eval-mode `graphdef`."""
  return _jit(lambda params, rest, x: tasks.scores(nnx.merge(graphdef, params, rest)(x), task),
              fast_compile)


def predict_in_batches(scores_fn: Callable, params, rest, images: np.ndarray,
                       batch_size: int) -> np.ndarray:
  """Runs `scores_fn` over `images` in batches of exactly `batch_size` (the last one
  padded), so one compilation serves any number of images."""
  return _map_padded(lambda chunk: scores_fn(params, rest, chunk),
                     np.asarray(images, np.float32), max(1, batch_size))


def make_predict_fn(model: nnx.Module, task: str, batch_size: int = 512
                    ) -> Callable[[np.ndarray], np.ndarray]:
  """float NHWC images in [0, 1] -> MedMNIST `y_score` (N, C) of `model` in eval mode."""
  model.eval()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  scores_fn = make_scores_fn(graphdef, task)
  return lambda images: predict_in_batches(scores_fn, params, rest, images,
                                           min(batch_size, len(images)))


@functools.lru_cache(maxsize=64)
def _jitted(fn):
  return jax.jit(fn)


def _in_chunks(fn, x: np.ndarray, chunk: int = 512) -> np.ndarray:
  """`fn` over `x` in equal, padded chunks: one compilation for any N."""
  n = x.shape[0]
  if n == 0:
    return x
  return _map_padded(_jitted(fn), x, min(chunk, n))


def _map_padded(fn, x: np.ndarray, chunk: int) -> np.ndarray:
  """`fn` over `x` in chunks of exactly `chunk` rows (the last padded by repeating its
  last row, the padding's outputs dropped), so one compilation serves any N."""
  out = []
  for i in range(0, x.shape[0], chunk):
    part = x[i:i + chunk]
    pad = chunk - part.shape[0]
    if pad:
      part = np.concatenate([part, np.repeat(part[-1:], pad, axis=0)])
    out.append(np.asarray(fn(part))[:chunk - pad])
  return np.concatenate(out)


def prepare_images(split, defense: defenses_lib.Defense, train: bool) -> np.ndarray:
  """uint8 split images -> float NHWC, with the defense's train or eval preprocessing."""
  x = as_float(split.images)
  if not (defense.has_train_preprocessing if train else defense.has_eval_preprocessing):
    return x
  return _in_chunks(defense.preprocess_train if train else defense.preprocess_eval, x)


@functools.lru_cache(maxsize=32)
def compiled_functions(graphdef, eval_graphdef, task: str, num_classes: int,
                       defense: defenses_lib.Defense, schedule: tuple,
                       fast_compile: bool = False):
  """(jitted tx.init, jitted train_step, jitted scores_fn), cached so that victims with the same
  architecture, input shape, defense and schedule (the clean and the protected
  victim of a pair) share one compilation."""
  lr, epochs, steps_per_epoch, milestones, gamma = schedule
  tx = optax.adam(lr_schedule(lr, epochs, steps_per_epoch, milestones, gamma))
  return (jax.jit(tx.init),
          make_train_step(graphdef, tx, task, num_classes, defense, fast_compile),
          make_scores_fn(eval_graphdef, task, fast_compile))


@functools.lru_cache(maxsize=32)
def _model_initializer(arch: str, kwargs: tuple, num_classes: int, in_channels: int,
                       image_size: int, fast_compile: bool = False):
  """(train graphdef, eval graphdef, jitted key -> (params, rest)) for one model shape.

  Initializing inside one jit compiles once per architecture instead of once
  per weight shape, which dominates start-up time on CPU.
  """
  build = lambda key: create_model(arch, num_classes=num_classes, in_channels=in_channels,
                                   image_size=image_size, rngs=nnx.Rngs(key), **dict(kwargs))
  model = nnx.eval_shape(lambda: build(jax.random.key(0)))
  model.eval()
  eval_graphdef = nnx.split(model, nnx.Param, ...)[0]
  model.train()
  graphdef = nnx.split(model, nnx.Param, ...)[0]

  def init(key):
    m = build(key)
    m.train()
    return nnx.split(m, nnx.Param, ...)[1:]

  return graphdef, eval_graphdef, _jit(init, fast_compile)


def init_model(arch: str, cfg, *, num_classes: int, in_channels: int, image_size: int,
               key: jax.Array):
  """Builds the model; returns (train graphdef, eval graphdef, params, rest)."""
  kwargs = dict(cfg.model_kwargs.get(arch, {}) if cfg.get("model_kwargs") else {})
  graphdef, eval_graphdef, init = _model_initializer(
      arch, tuple(sorted(kwargs.items())), num_classes, in_channels, image_size,
      bool(cfg.get("fast_compile", False)))
  params, rest = init(key)
  return graphdef, eval_graphdef, params, rest


def _evaluate(scores_fn, state: VictimState, images: dict, labels: dict, task: str,
              batch_size: int) -> dict:
  return {name: metrics.evaluate_scores(
      labels[name], predict_in_batches(scores_fn, state.params, state.rest, images[name],
                                       batch_size), task)
          for name in images}


def _best_epoch(history: list[dict]) -> int:
  """Index of the first epoch with the highest val AUC (NaN counts as lowest)."""
  vals = [h["val_auc"] if np.isfinite(h["val_auc"]) else -np.inf for h in history]
  return int(np.argmax(vals))


def _train_epoch(train_step, state: VictimState, x: np.ndarray, y: np.ndarray,
                 batch_size: int, key: jax.Array) -> tuple[VictimState, float]:
  """One pass over a fresh shuffle of (x, y); returns the state and the mean loss."""
  k_shuffle, k_steps = jax.random.split(key)
  perm = np.asarray(jax.random.permutation(k_shuffle, len(x)))
  losses = []
  for i, start in enumerate(range(0, len(x), batch_size)):
    idx = perm[start:start + batch_size]
    state, m = train_step(state, (x[idx], y[idx]), jax.random.fold_in(k_steps, i))
    losses.append(m["loss"])
  return state, float(np.mean(jax.device_get(losses)))


def _summary(history: list[dict]) -> dict:
  best = history[_best_epoch(history)]
  return {
      "last": {"epoch": history[-1]["epoch"], "auc": history[-1]["test_auc"],
               "acc": history[-1]["test_acc"], "val_auc": history[-1]["val_auc"]},
      "best_val": {"epoch": best["epoch"], "auc": best["test_auc"], "acc": best["test_acc"],
                   "val_auc": best["val_auc"]},
  }


def train_victim(train, val, test, *, task: str, num_classes: int, arch: str,
                 cfg: ml_collections.ConfigDict, defense: str | defenses_lib.Defense = "none",
                 key: jax.Array, progress: bool = False, desc: str = "victim",
                 on_epoch: Callable[[dict], None] | None = None) -> dict:
  """Trains one victim on `train` (uint8 images, labels) and tracks val / test.

  Returns a dict: 'history' (per epoch: epoch, train_loss, val_auc, val_acc,
  test_auc, test_acc), 'last' and 'best_val' (test auc / acc, their epoch and
  that epoch's val_auc, so a setting can be chosen on val), 'seconds', and 'model' (the trained nnx model,
  in eval mode, for diagnostic utility). `on_epoch` gets each epoch's history
  row (e.g. a TensorBoard writer); the bar is drawn only on a terminal.
  """
  tasks.check_task(task)
  defense = defenses_lib.get(defense) if isinstance(defense, str) else defense
  if len(train) == 0:
    raise ValueError("train_victim got an empty training split.")
  if int(cfg.epochs) < 1:
    raise ValueError(f"victim epochs must be >= 1, got {cfg.epochs}.")
  t0 = time.time()
  x_train = prepare_images(train, defense, train=True)
  y_train = np.asarray(train.labels)
  evals = {"val": prepare_images(val, defense, False), "test": prepare_images(test, defense, False)}
  eval_labels = {"val": np.asarray(val.labels), "test": np.asarray(test.labels)}
  batch_size = min(cfg.batch_size, len(x_train))
  steps_per_epoch = -(-len(x_train) // batch_size)
  k_init, k_loop = jax.random.split(key)
  graphdef, eval_graphdef, params, rest = init_model(
      arch, cfg, num_classes=num_classes, in_channels=x_train.shape[-1],
      image_size=x_train.shape[1], key=k_init)
  schedule = (float(cfg.lr), int(cfg.epochs), steps_per_epoch, tuple(cfg.milestones),
              float(cfg.gamma))
  opt_init, train_step, scores_fn = compiled_functions(graphdef, eval_graphdef, task,
                                                       num_classes, defense, schedule,
                                                       bool(cfg.get("fast_compile", False)))
  state = VictimState(params, rest, opt_init(params), jnp.zeros((), jnp.int32))
  eval_bs = max(1, min(cfg.eval_batch_size, max(len(v) for v in evals.values())))
  history = []
  bar = tqdm.trange(cfg.epochs, desc=desc, unit="epoch", disable=terminal.bar_disable(progress),
                    leave=False)
  for epoch in bar:
    state, loss = _train_epoch(train_step, state, x_train, y_train, batch_size,
                               jax.random.fold_in(k_loop, epoch))
    ev = _evaluate(scores_fn, state, evals, eval_labels, task, eval_bs)
    row = {"epoch": epoch + 1, "train_loss": loss,
           **{f"{s}_{k}": v for s in ev for k, v in ev[s].items()}}
    history.append(row)
    logging.info("%s epoch %d/%d: loss %.4f val auc %.4f acc %.4f test auc %.4f acc %.4f",
                 desc, epoch + 1, cfg.epochs, row["train_loss"], row["val_auc"],
                 row["val_acc"], row["test_auc"], row["test_acc"])
    bar.set_postfix(loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")
    if on_epoch:
      on_epoch(row)
  return {"history": history, **_summary(history), "seconds": time.time() - t0,
          "model": nnx.merge(eval_graphdef, state.params, state.rest)}
