"""MedMNIST task types: the loss, the scores and the accuracy of each.

MedMNIST names four task types. Labels always keep MedMNIST's (N, L) shape:
L = 1 holding a class index for the single-label tasks, L = number of labels
holding 0/1 for the multi-label task (ChestMNIST); `label_matrix` turns the
flat (N,) single-label arrays found in the wild into that shape. Ordinal
regression (RetinaMNIST) is trained as multi-class, as MedMNIST's own
benchmark does.

Everything here is jnp and pure, so that the noise generator, the surrogate
and the victims all share one definition of "the loss" and "accuracy".
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

BINARY = "binary-class"
MULTI_CLASS = "multi-class"
MULTI_LABEL = "multi-label, binary-class"
ORDINAL = "ordinal-regression"
TASKS = (BINARY, MULTI_CLASS, MULTI_LABEL, ORDINAL)


def check_task(task: str) -> str:
  """Returns `task` if it is a MedMNIST task type, else raises a clear error."""
  if task not in TASKS:
    raise ValueError(f"Unknown task type {task!r}; expected one of {TASKS}.")
  return task


def is_multilabel(task: str) -> bool:
  return check_task(task) == MULTI_LABEL


NOISE_MODES = ("auto", "class", "sample")


def noise_mode(mode: str, task: str) -> str:
  """'class' (one δ per class) or 'sample' (one δ per image) for `noise.mode` on `task`.

  'auto' is class-wise where every image has one class, and per image for the
  multi-label task, where an image has no single class to share a δ with.
  """
  if mode not in NOISE_MODES:
    raise ValueError(f"noise.mode must be one of {NOISE_MODES}, got {mode!r}.")
  if mode == "auto":
    return "sample" if is_multilabel(task) else "class"
  if mode == "class" and is_multilabel(task):
    raise ValueError("Class-wise noise (noise.mode='class') needs one class per image; the "
                     "multi-label task has none. Use noise.mode='auto' or 'sample'.")
  return mode


def label_matrix(labels, task: str):
  """`labels` in MedMNIST's (B, L) shape; a single-label task's (B,) indices become (B, 1).

  Many MedMNIST-style arrays in the wild hold single-label classes flat, as
  (B,). Every library entry point calls this first, so such labels work, and
  a shape that cannot be read one way only fails here, with the shape it
  expected, instead of deep inside optax. A flat vector is refused for the
  multi-label task: (L,) could be one image's findings or L images' labels.
  Works on numpy arrays, jax arrays and tracers (it only reads the shape).
  """
  check_task(task)
  if not hasattr(labels, "shape"):
    labels = np.asarray(labels)
  shape = tuple(labels.shape)
  if is_multilabel(task):
    if len(shape) != 2:
      raise ValueError(f"labels have shape {shape}; the multi-label task expects (B, L) 0/1 "
                       "labels, one column per finding.")
    return labels
  if len(shape) == 1:
    return labels.reshape(-1, 1)
  if len(shape) != 2 or shape[1] != 1:
    raise ValueError(f"labels have shape {shape}; a {task!r} task expects class indices of "
                     "shape (B, 1) or (B,).")
  return labels


def per_example_loss(logits: jax.Array, labels: jax.Array, task: str) -> jax.Array:
  """(B,) losses: sigmoid BCE (mean over labels) for multi-label, else softmax CE."""
  if is_multilabel(task):
    return optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)).mean(-1)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels[..., 0].astype(jnp.int32))


def loss(logits: jax.Array, labels: jax.Array, task: str) -> jax.Array:
  """Mean loss over the batch."""
  return per_example_loss(logits, labels, task).mean()


def scores(logits: jax.Array, task: str) -> jax.Array:
  """Probabilities in MedMNIST's `y_score` layout: sigmoid per label, or softmax."""
  if is_multilabel(task):
    return jax.nn.sigmoid(logits)
  return jax.nn.softmax(logits, axis=-1)


def per_example_correct(logits: jax.Array, labels: jax.Array, task: str) -> jax.Array:
  """(B,) fraction correct per example, with `medmnist.Evaluator`'s ACC rules.

  Binary and multi-label threshold the score at 0.5 (for binary, the score of
  the last class, i.e. logit_1 > logit_0); the others take the argmax. For
  multi-label each example scores the fraction of its labels that are right, so
  the batch mean equals MedMNIST's mean of per-label accuracies.
  """
  if is_multilabel(task):
    return ((logits > 0) == (labels > 0)).astype(jnp.float32).mean(-1)
  pred = jnp.argmax(logits, axis=-1)
  return (pred == labels[..., 0]).astype(jnp.float32)


def accuracy(logits: jax.Array, labels: jax.Array, task: str) -> jax.Array:
  return per_example_correct(logits, labels, task).mean()

