"""AUC and ACC exactly as `medmnist.Evaluator` computes them, in plain numpy.

MedMNIST's published numbers come from `medmnist.evaluator.getAUC/getACC`,
which call scikit-learn. Victim results are only comparable with them if the
same rules hold, so they are restated here (no sklearn at run time):

* AUC. binary-class: ROC AUC of the last column of `y_score` (the positive
  class). multi-label: the mean of the per-label AUCs. multi-class and
  ordinal-regression: the mean over classes of the one-vs-rest AUC.
* ACC. binary-class: `y_score[:, -1] > threshold`. multi-label: per-label
  `y_score > threshold`, mean of the per-label accuracies. Otherwise argmax.

The AUC is the Mann-Whitney statistic with average ranks for ties, which is
the trapezoidal ROC area scikit-learn returns. Where scikit-learn would raise
(a label or class with only positives or only negatives in `y_true`), that
term is NaN and left out of the mean; the result is NaN only if every term is.
"""
from __future__ import annotations

import numpy as np

from salm_jax import tasks


def _as_2d(y: np.ndarray, name: str) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim == 1:
    y = y[:, None]
  if y.ndim != 2:
    raise ValueError(f"{name} must have shape (N,) or (N, K); got shape {y.shape}.")
  return y


def _ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks with ties given their average rank (scipy's 'average')."""
  order = np.argsort(x, kind="mergesort")
  xs = x[order]
  # Boundaries of runs of equal values in the sorted order.
  starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
  ends = np.r_[starts[1:], len(xs)]
  avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
  ranks = np.empty(len(x), dtype=np.float64)
  ranks[order] = np.repeat(avg, ends - starts)
  return ranks


def binary_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
  """ROC AUC of scores for 0/1 labels; NaN when only one class is present."""
  y_true = np.asarray(y_true).reshape(-1) > 0
  y_score = np.asarray(y_score, dtype=np.float64).reshape(-1)
  if y_true.shape != y_score.shape:
    raise ValueError(f"y_true has {y_true.size} entries but y_score has {y_score.size}.")
  n_pos = int(y_true.sum())
  n_neg = y_true.size - n_pos
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  rank_sum = _ranks(y_score)[y_true].sum()
  return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _mean_of_defined(values: list[float]) -> float:
  vals = np.asarray(values, dtype=np.float64)
  if np.all(np.isnan(vals)):
    return float("nan")
  return float(np.nanmean(vals))


def _checked(y_true, y_score, task: str) -> tuple[np.ndarray, np.ndarray]:
  """Both as 2-D arrays with one row per example, or a clear error."""
  tasks.check_task(task)
  y_true = _as_2d(y_true, "y_true")
  y_score = _as_2d(y_score, "y_score")
  if y_true.shape[0] != y_score.shape[0]:
    raise ValueError(f"y_true has {y_true.shape[0]} rows but y_score has {y_score.shape[0]}.")
  return y_true, y_score


def auc(y_true: np.ndarray, y_score: np.ndarray, task: str) -> float:
  """MedMNIST's AUC. `y_true` (N, L) or (N,), `y_score` (N, C) or (N,)."""
  y_true, y_score = _checked(y_true, y_score, task)
  if task == tasks.MULTI_LABEL:
    if y_true.shape != y_score.shape:
      raise ValueError(f"multi-label needs y_true and y_score of one shape; got {y_true.shape} "
                       f"and {y_score.shape}.")
    return _mean_of_defined([binary_auc(y_true[:, i], y_score[:, i])
                             for i in range(y_score.shape[1])])
  if task == tasks.BINARY:
    return binary_auc(y_true[:, 0], y_score[:, -1])
  labels = y_true[:, 0]
  return _mean_of_defined([binary_auc(labels == c, y_score[:, c])
                           for c in range(y_score.shape[1])])


def acc(y_true: np.ndarray, y_score: np.ndarray, task: str, threshold: float = 0.5) -> float:
  """MedMNIST's ACC (threshold for binary and multi-label, argmax otherwise)."""
  y_true, y_score = _checked(y_true, y_score, task)
  if task == tasks.MULTI_LABEL:
    return float(np.mean((y_score > threshold) == (y_true > 0)))
  if task == tasks.BINARY:
    return float(np.mean((y_score[:, -1] > threshold) == (y_true[:, 0] > 0)))
  return float(np.mean(np.argmax(y_score, axis=-1) == y_true[:, 0]))


def evaluate_scores(y_true: np.ndarray, y_score: np.ndarray, task: str) -> dict[str, float]:
  """{'auc': ..., 'acc': ...} for one split, as MedMNIST reports them."""
  return {"auc": auc(y_true, y_score, task), "acc": acc(y_true, y_score, task)}
