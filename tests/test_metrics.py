"""The metric functions against scikit-learn, restating `medmnist.Evaluator`."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from salm_jax import tasks
from salm_jax.evaluation import metrics


def _softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _reference_auc(y_true, y_score, task):
  """`medmnist.evaluator.getAUC`, written out with scikit-learn."""
  y_true, y_score = y_true.squeeze(), y_score.squeeze()
  if task == tasks.MULTI_LABEL:
    return np.mean([roc_auc_score(y_true[:, i], y_score[:, i]) for i in range(y_score.shape[1])])
  if task == tasks.BINARY:
    return roc_auc_score(y_true, y_score[:, -1])
  return np.mean([roc_auc_score((y_true == i).astype(float), y_score[:, i])
                  for i in range(y_score.shape[1])])


def _reference_acc(y_true, y_score, task, threshold=0.5):
  """`medmnist.evaluator.getACC`, written out with scikit-learn."""
  y_true, y_score = y_true.squeeze(), y_score.squeeze()
  if task == tasks.MULTI_LABEL:
    y_pre = y_score > threshold
    return np.mean([accuracy_score(y_true[:, i], y_pre[:, i]) for i in range(y_true.shape[1])])
  if task == tasks.BINARY:
    return accuracy_score(y_true, y_score[:, -1] > threshold)
  return accuracy_score(y_true, np.argmax(y_score, axis=-1))


def _random_case(task, rng, n=200, quantize=False):
  if task == tasks.MULTI_LABEL:
    k = 5
    y_true = rng.integers(0, 2, size=(n, k))
    y_score = 1 / (1 + np.exp(-rng.normal(size=(n, k)) - y_true))
  else:
    k = 2 if task == tasks.BINARY else 5
    y_true = rng.integers(0, k, size=(n, 1))
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y_true[:, 0]] += 0.7
    y_score = _softmax(logits)
  if quantize:  # many ties, which the rank statistic must average
    y_score = np.round(y_score, 1)
  return y_true, y_score


@pytest.mark.parametrize("task", tasks.TASKS)
@pytest.mark.parametrize("quantize", [False, True])
def test_matches_sklearn_on_random_inputs(task, quantize):
  rng = np.random.default_rng(tasks.TASKS.index(task) * 2 + int(quantize))
  for _ in range(5):
    y_true, y_score = _random_case(task, rng, quantize=quantize)
    np.testing.assert_allclose(metrics.auc(y_true, y_score, task),
                               _reference_auc(y_true, y_score, task), rtol=0, atol=1e-12)
    assert metrics.acc(y_true, y_score, task) == pytest.approx(
        _reference_acc(y_true, y_score, task), abs=1e-12)
    out = metrics.evaluate_scores(y_true, y_score, task)
    assert set(out) == {"auc", "acc"}


def test_binary_uses_the_last_column():
  y_true = np.array([[0], [0], [1], [1]])
  # Column 0 ranks the examples backwards, column 1 perfectly.
  y_score = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9]])
  assert metrics.auc(y_true, y_score, tasks.BINARY) == 1.0
  assert metrics.acc(y_true, y_score, tasks.BINARY) == 1.0
  assert metrics.acc(y_true, y_score, tasks.BINARY, threshold=0.85) == 0.75


def test_undefined_auc_terms_are_left_out():
  # Class 2 never occurs: sklearn would raise; that term is dropped.
  y_true = np.array([[0], [1], [0], [1]])
  y_score = _softmax(np.array([[2., 0, 0], [0, 2., 0], [1., 0, 0], [0, 1., 0]]))
  assert metrics.auc(y_true, y_score, tasks.MULTI_CLASS) == 1.0
  assert np.isnan(metrics.auc(np.zeros((3, 1)), np.ones((3, 2)) / 2, tasks.BINARY))


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="rows"):
    metrics.auc(np.zeros((3, 1)), np.zeros((4, 2)), tasks.BINARY)
  with pytest.raises(ValueError, match="Unknown task"):
    metrics.acc(np.zeros((3, 1)), np.zeros((3, 2)), "regression")
