"""Flat (N,) labels: in the library entry points, and in npz files through the pipeline."""
import functools
import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import salm_jax
from configs import salm
from salm_jax import pipeline, tasks
from salm_jax.data import loading, npz_io, protected
from salm_jax.models import create_model
from tests.helpers import folders, tiny


def test_label_matrix_reshapes_flat_single_label_and_names_the_shape_otherwise():
  flat = np.array([0, 1, 1])
  for task in (tasks.BINARY, tasks.MULTI_CLASS, tasks.ORDINAL):
    np.testing.assert_array_equal(tasks.label_matrix(flat, task), flat[:, None])
  assert tasks.label_matrix(jnp.asarray(flat), tasks.BINARY).shape == (3, 1)
  assert tasks.label_matrix([1, 0], tasks.BINARY).shape == (2, 1)
  same = np.zeros((3, 1), int)
  assert tasks.label_matrix(same, tasks.BINARY) is same
  with pytest.raises(ValueError, match=r"multi-label task expects \(B, L\)"):
    tasks.label_matrix(flat, tasks.MULTI_LABEL)
  with pytest.raises(ValueError, match=r"expects class indices of shape \(B, 1\) or \(B,\)"):
    tasks.label_matrix(np.zeros((3, 2), int), tasks.MULTI_CLASS)
  with pytest.raises(ValueError, match="Unknown task"):
    tasks.label_matrix(flat, "regression")


@pytest.fixture(scope="module")
def model_and_batch():
  images, labels = tiny.blobs(8, 8)
  model = create_model("small_cnn", num_classes=2, in_channels=1, image_size=8,
                       rngs=nnx.Rngs(0), width=4)
  model.eval()
  graphdef, variables = nnx.split(model)
  return (_apply, graphdef, variables), jnp.asarray(images), labels


def _apply(variables, images, graphdef=None):
  return nnx.merge(graphdef, variables)(images)


def test_masked_pgd_and_saliency_take_flat_integer_labels(model_and_batch):
  (apply, graphdef, variables), images, labels = model_and_batch
  apply_fn = functools.partial(apply, graphdef=graphdef)
  flat = jnp.asarray(labels[:, 0], jnp.int32)
  kw = dict(task=tasks.BINARY, steps=2, mask_ratio=0.2)
  np.testing.assert_array_equal(
      salm_jax.masked_pgd(apply_fn, variables, images, flat, jnp.zeros_like(images), **kw),
      salm_jax.masked_pgd(apply_fn, variables, images, labels, jnp.zeros_like(images), **kw))
  np.testing.assert_array_equal(
      salm_jax.pixel_saliency(apply_fn, variables, images, flat, task=tasks.BINARY),
      salm_jax.pixel_saliency(apply_fn, variables, images, labels, task=tasks.BINARY))
  with pytest.raises(ValueError, match=r"\(B, L\)"):
    salm_jax.pixel_saliency(apply_fn, variables, images, flat, task=tasks.MULTI_LABEL)


def test_generate_takes_flat_labels():
  images, labels = tiny.blobs(32, 8)
  cfg = tiny.config(max_rounds=1)
  flat = salm_jax.generate(cfg, images, labels[:, 0], task=tasks.BINARY, num_classes=2,
                           progress=False)
  assert flat.delta.shape == images.shape and flat.rounds == 1


def test_flat_label_npz_loads_as_n_by_1(tmp_path):
  arrays = folders.flat_label_npz(tmp_path / "breast.npz")
  ds = loading.load_dataset(str(tmp_path / "breast.npz"))
  assert ds.task == tasks.BINARY and ds.layout == {"format": "npz", "label_shape": "(N,)"}
  for s in ("train", "val", "test"):
    np.testing.assert_array_equal(ds.splits[s].labels, arrays[f"{s}_labels"][:, None])


def test_flat_labels_refused_where_ambiguous(tmp_path):
  folders.flat_label_npz(tmp_path / "flat.npz")
  with pytest.raises(ValueError, match=r"flat \(N,\).*multi-label"):
    loading.load_custom(str(tmp_path / "flat.npz"), task=tasks.MULTI_LABEL, num_classes=2)
  arrays = dict(np.load(tmp_path / "flat.npz"))
  arrays["val_labels"] = arrays["val_labels"][:, None]
  np.savez(tmp_path / "mixed.npz", **arrays)
  with pytest.raises(ValueError, match=r"mixed.npz: label shapes mix flat"):
    npz_io.read_npz(str(tmp_path / "mixed.npz"))
  arrays["val_labels"] = arrays["val_labels"][:, :, None]
  np.savez(tmp_path / "3d.npz", **arrays)
  with pytest.raises(ValueError, match=r"3d.npz: val_labels has shape \(16, 1, 1\)"):
    npz_io.read_npz(str(tmp_path / "3d.npz"))


def test_flat_label_npz_through_protect_evaluate_report(tmp_path):
  """protect -> evaluate -> report on a flat-label npz; the output keeps (N,) labels."""
  src = tmp_path / "breastmnist_flat.npz"
  arrays = folders.flat_label_npz(src)
  cfg = salm.get_config("synthetic,tiny")
  cfg.dataset.name = str(src)
  summary = pipeline.run_all(cfg, str(tmp_path / "run"), progress=False)
  out = tmp_path / "run" / "protected"
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["dataset"]["layout"]["label_shape"] == "(N,)"
  assert "flat" in manifest["dataset"]["layout"]["note"]
  with np.load(out / "breastmnist_flat.npz") as z:
    for s in ("train", "val", "test"):
      assert z[f"{s}_labels"].shape == arrays[f"{s}_labels"].shape
      np.testing.assert_array_equal(z[f"{s}_labels"], arrays[f"{s}_labels"])
      assert z[f"{s}_labels"].dtype == arrays[f"{s}_labels"].dtype
    np.testing.assert_array_equal(z["test_images"], arrays["test_images"])
    assert not np.array_equal(z["train_images"], arrays["train_images"])
  back, _ = protected.read_protected(str(out))
  assert back.train.labels.shape == (48, 1)
  assert 0 <= summary["chance_accuracy"] <= 1
  assert (tmp_path / "run" / "report" / "index.html").exists()


def test_resaved_breastmnist_with_flat_labels_matches_the_official_file(medmnist_dir, tmp_path):
  """The issue's case: BreastMNIST re-saved with (546,) labels, arrays otherwise identical."""
  official = loading.load_dataset("breastmnist", data_dir=str(medmnist_dir), download=False)
  with np.load(medmnist_dir / "breastmnist.npz") as z:
    arrays = {k: (z[k][:, 0] if k.endswith("_labels") else z[k]) for k in z.files}
  assert arrays["train_labels"].shape == (546,)
  np.savez_compressed(tmp_path / "breastmnist_course.npz", **arrays)
  mine = loading.load_dataset(str(tmp_path / "breastmnist_course.npz"))
  assert (mine.task, mine.num_classes) == (official.task, official.num_classes)
  for s in ("train", "val", "test"):
    np.testing.assert_array_equal(mine.splits[s].labels, official.splits[s].labels)
    np.testing.assert_array_equal(mine.splits[s].images, official.splits[s].images)
  npz_io.write_npz(str(tmp_path / "back.npz"), mine.splits, flat_labels=True)
  with np.load(tmp_path / "back.npz") as z:
    assert all(z[k].shape == arrays[k].shape for k in arrays)
