"""The default is SALM within its budget on every task type, counted on the written uint8 file."""
import numpy as np
import pytest

from configs import salm as salm_config
from salm_jax import data as data_lib
from salm_jax import protect
from salm_jax import tasks
from salm_jax.data import phantom
from salm_jax.noise.salm import generator, masks
from tests.helpers import tiny


@pytest.mark.parametrize("arg", ["synthetic", "breastmnist", "pneumoniamnist", "chestmnist",
                                 "octmnist,size=64", "bloodmnist,full", "tissuemnist,tiny"])
def test_every_default_config_is_salm_within_the_budget(arg):
  noise = salm_config.get_config(arg).noise
  assert noise.method == "salm" and noise.budget == "linf"
  assert noise.mask_ratio <= 0.1 and noise.epsilon <= 8 / 255
  assert noise.mode == "auto"  # class-wise, or per image where an image has no single class


def _npz(tmp_path, name, task, num_classes, channels):
  """A small MedMNIST-layout npz of phantom images (28 px)."""
  dataset = phantom.make_phantom(task=task, num_classes=num_classes, size=28,
                                 channels=channels, n_train=48, n_val=16, n_test=16, seed=0)
  arrays = {f"{s}_{k}": v for s, split in dataset.splits.items()
            for k, v in (("images", split.images), ("labels", split.labels))}
  path = tmp_path / f"{name}.npz"
  np.savez(path, **arrays)
  return str(path)


@pytest.mark.parametrize("name, task, num_classes, channels, mode", [
    ("binary_gray", "binary", 2, 1, "class"),
    ("multiclass_gray", "multi-class", 4, 1, "class"),
    ("multilabel_gray", "multi-label", 5, 1, "sample"),
    ("five_class_rgb", "multi-class", 5, 3, "class"),
])
def test_default_protects_each_task_type_within_the_budget(tmp_path, name, task, num_classes,
                                                           channels, mode):
  cfg = salm_config.get_config("synthetic,tiny")
  cfg.dataset.name = _npz(tmp_path, name, task, num_classes, channels)
  workdir = str(tmp_path / "run")
  manifest = protect.protect(cfg, workdir, progress=False)
  clean = data_lib.load_from_config(cfg.dataset)
  written, _ = data_lib.read_protected(f"{workdir}/protected")
  before = clean.splits["train"].images.astype(np.int16)
  after = written.splits["train"].images.astype(np.int16)
  changed = (before != after).reshape(len(before), 28, 28, -1).any(-1)
  assert changed.sum((1, 2)).max() <= masks.num_kept(0.1, 28 * 28) == 78
  assert changed.any() and np.abs(after - before).max() <= 8
  assert manifest["method"] == "salm"
  assert manifest["split_stats"]["train"]["frac_changed_max"] <= 0.1
  labels = clean.splits["train"].labels[:, 0]
  if mode == "class":  # every image of a class changed on the same pixels, where it changed
    for c in np.unique(labels):
      rows = changed[labels == c]
      assert (rows.sum(0) > 0).sum() <= 78


def test_ordinal_labels_get_class_wise_noise_within_the_budget():
  images, labels = tiny.blobs(32, 12)
  cfg = tiny.config(mode="auto", mask_ratio=0.1, max_rounds=1, stop_accuracy=1.01)
  res = generator.generate(cfg, images, labels, task=tasks.ORDINAL, num_classes=2,
                           progress=False)
  touched = (res.delta != 0).any(-1)
  assert touched.sum((1, 2)).max() <= masks.num_kept(0.1, 144)
  assert np.abs(res.delta).max() <= 8 / 255 + 1e-6
  for c in (0, 1):  # one δ per class: the same pixels for the whole class
    rows = touched[labels[:, 0] == c]
    assert ((rows.sum(0) > 0).sum()) <= masks.num_kept(0.1, 144)


def test_class_mode_on_multilabel_data_names_the_problem():
  with pytest.raises(ValueError, match="one class per image"):
    tasks.noise_mode("class", tasks.MULTI_LABEL)
  assert tasks.noise_mode("auto", tasks.MULTI_LABEL) == "sample"
  assert tasks.noise_mode("auto", tasks.ORDINAL) == "class"
