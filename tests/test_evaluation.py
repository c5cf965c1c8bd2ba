"""The evaluation suite: partial / collaborative poisoning, evaluate_datasets, run_evaluation."""
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from salm_jax import evaluation, tasks
from salm_jax.data.dataset import Dataset, Split
from salm_jax.evaluation import poisoning


def _dataset(n=(48, 16, 16), size=12, seed=0):
  rng = np.random.default_rng(seed)
  splits = {}
  for name, k in zip(("train", "val", "test"), n):
    y = rng.integers(0, 2, (k, 1))
    x = rng.integers(0, 100, (k, size, size)).astype(np.uint8)
    x[y[:, 0] == 1, 3:9, 3:9] += 120
    splits[name] = Split(x, y)
  return Dataset(name="toy", task=tasks.BINARY, num_classes=2,
                 label_names={"0": "a", "1": "b"}, splits=splits, source="test")


def _shortcut(ds, strength=24):
  """A class-wise pattern on the training images: the kind of shortcut protection plants."""
  pattern = np.random.default_rng(9).choice([-strength, strength], size=(2,) + ds.train.images.shape[1:])
  x = ds.train.images.astype(int) + pattern[ds.train.labels[:, 0]]
  train = Split(np.clip(x, 0, 255).astype(np.uint8), ds.train.labels)
  return ds.replace(splits={**ds.splits, "train": train})


def _cfg(**over):
  cfg = evaluation.default_config()
  cfg.epochs, cfg.batch_size, cfg.eval_batch_size, cfg.fast_compile = 2, 16, 32, True
  cfg.model_kwargs = {"small_cnn": {"width": 4}}
  cfg.update(over)
  return cfg


def test_partial_poisoning_takes_the_right_share():
  ds, prot = _dataset(), _shortcut(_dataset())
  mixed, mask = poisoning.mix_poisoned(ds.train, prot.train, 0.25, jax.random.key(0))
  assert mask.sum() == 12
  np.testing.assert_array_equal(mixed.images[mask], prot.train.images[mask])
  np.testing.assert_array_equal(mixed.images[~mask], ds.train.images[~mask])
  _, mask2 = poisoning.mix_poisoned(ds.train, prot.train, 0.25, jax.random.key(1))
  assert not np.array_equal(mask, mask2)  # the key decides which
  with pytest.raises(ValueError, match="in \\[0, 1\\]"):
    poisoning.poisoned_subset(10, 1.5, jax.random.key(0))
  bad = Split(prot.train.images, 1 - prot.train.labels)
  with pytest.raises(ValueError, match="different labels"):
    poisoning.mix_poisoned(ds.train, bad, 0.5, jax.random.key(0))


def test_collaborative_protect_calls_each_party_with_its_own_seed():
  ds = _dataset()
  calls = []

  def fake_protect(images, labels, seed):
    calls.append((len(images), seed))
    assert images.dtype == np.float32 and images.ndim == 4 and len(labels) == len(images)
    return np.full(images.shape, 1 + len(calls), np.float32) / 255  # party-specific shift

  out, parties = poisoning.collaborative_protect(ds, 3, fake_protect, jax.random.key(0))
  assert [c[0] for c in calls] == [16, 16, 16]
  assert len({c[1] for c in calls}) == 3
  shift = out.train.images.astype(int) - ds.train.images.astype(int)
  for p in range(3):  # images stay below 255 - 4, so nothing is clipped
    np.testing.assert_array_equal(np.unique(shift[parties == p]), [2 + p])
  np.testing.assert_array_equal(out.test.images, ds.test.images)
  np.testing.assert_array_equal(out.train.labels, ds.train.labels)
  with pytest.raises(ValueError, match="n_parties"):
    poisoning.collaborative_protect(ds, 0, fake_protect, jax.random.key(0))
  with pytest.raises(ValueError, match="noise of shape"):
    poisoning.collaborative_protect(ds, 2, lambda x, y, s: x[:, :-1], jax.random.key(0))


def test_perturbed_splits_and_mismatches():
  ds = _dataset()
  assert evaluation.perturbed_splits(ds, _shortcut(ds)) == ["train"]
  assert evaluation.perturbed_splits(ds, ds) == []
  with pytest.raises(ValueError, match="does not hold"):
    evaluation.perturbed_splits(ds, _dataset(n=(40, 16, 16)))


def test_evaluate_datasets_table_and_files(tmp_path):
  ds = _dataset()
  prot = _shortcut(ds)
  cfg = _cfg(defenses=("none", "hflip"), poison_fractions=(1.0, 0.5))
  res = evaluation.evaluate_datasets(ds, prot, cfg, key=jax.random.key(0), progress=False)
  assert [(r["defense"], r["poison_fraction"]) for r in res["rows"]] == [
      ("none", 1.0), ("none", 0.5), ("hflip", 1.0), ("hflip", 0.5)]
  for r in res["rows"]:
    for v in ("clean", "protected"):
      assert set(r[v]["last"]) == {"epoch", "auc", "acc", "val_auc"} and r[v]["last"]["epoch"] == 2
      assert 1 <= r[v]["best_val"]["epoch"] <= 2
    assert r["diagnostic"]["split"] == "train" and 0 <= r["diagnostic"]["agreement"] <= 1
  # Clean victims are shared by the rows of one defense; protected ones differ by p.
  assert res["rows"][0]["clean"] == res["rows"][1]["clean"]
  assert len(res["curves"]) == 6 and len(res["curves"][0]["test_acc"]) == 2
  kinds = [(c["defense"], c["victim"], c["poison_fraction"]) for c in res["curves"]]
  assert kinds[:3] == [("none", "clean", None), ("none", "protected", 1.0),
                       ("none", "protected", 0.5)]
  assert res["curves"][1]["train_loss"] != res["curves"][2]["train_loss"]  # other data
  assert res["utility"]["train"]["linf_uint8"] == 24
  json.dumps(res, allow_nan=False)  # JSON-safe throughout

  evaluation.write_results(res, str(tmp_path))
  assert json.loads((tmp_path / "results.json").read_text())["rows"] == res["rows"]
  assert len(json.loads((tmp_path / "curves.json").read_text())) == 6
  md = (tmp_path / "results.md").read_text()
  assert "| small_cnn | hflip | 0.5 |" in md and "Diagnostic utility" in md and "| train | 48 |" in md
  with pytest.raises(ValueError, match="Unknown defense"):
    evaluation.evaluate_datasets(ds, prot, _cfg(defenses=("jpg",)), key=jax.random.key(0))


def test_parallel_victims_match_one_after_the_other():
  ds = _dataset(n=(32, 16, 16))
  prot = _shortcut(ds)
  cfg = _cfg(epochs=1, poison_fractions=(1.0, 0.5))
  runs = {}
  for workers in (1, 3):
    cfg.parallel_victims = workers
    runs[workers] = evaluation.evaluate_datasets(ds, prot, cfg, key=jax.random.key(0),
                                                 progress=False)
  def without_times(rows):
    return [{k: ({**v, "seconds": None} if isinstance(v, dict) and "seconds" in v else v)
             for k, v in r.items()} for r in rows]
  assert without_times(runs[1]["rows"]) == without_times(runs[3]["rows"])
  assert runs[1]["curves"] == runs[3]["curves"]
  with pytest.raises(ValueError, match="parallel_victims must be >= 1"):
    evaluation.evaluate_datasets(ds, prot, _cfg(parallel_victims=0), key=jax.random.key(0))


def test_run_evaluation_reads_a_protected_workdir(tmp_path):
  from salm_jax import data
  from salm_jax import workdir as wd
  config = ml_collections.ConfigDict({"dataset": data.default_config(),
                                      "evaluation": _cfg(epochs=1)})
  config.dataset.phantom.update(n_train=32, n_val=16, n_test=16)
  config.dataset.size = 16
  clean = data.load_from_config(config.dataset)
  noise = np.where(np.arange(16) % 2 == 0, 3, -3).astype(np.int16)[None, :, None]
  prot = np.clip(clean.train.images.astype(np.int16) + noise, 0, 255).astype(np.uint8)
  data.write_protected(wd.path(str(tmp_path), wd.PROTECTED), clean, {"train": prot},
                       {"train": np.ones(clean.train.images.shape[:3], bool)},
                       config={"epsilon": 4 / 255, "mask_ratio": 1.0, "seed": 0,
                               "surrogate": "small_cnn"}, split_stats={})
  res = evaluation.run_evaluation(config, str(tmp_path), progress=False)
  out = wd.path(str(tmp_path), wd.EVALUATION)
  assert sorted(set(os.listdir(out)) - {"tensorboard"}) == ["curves.json", "results.json",
                                                           "results.md"]  # + events, if a writer
  assert res["protection"]["epsilon"] == pytest.approx(4 / 255)
  assert res["perturbed_splits"] == ["train"] and res["utility"]["train"]["linf_uint8"] == 3
  assert os.path.exists(wd.path(str(tmp_path), wd.DONE_EVALUATE))
