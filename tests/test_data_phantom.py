"""The phantom: deterministic, sparse, in MedMNIST's layout, and learnable."""
import numpy as np
import optax
import pytest
from flax import nnx

from salm_jax import tasks
from salm_jax.data import loading
from salm_jax.data import phantom
from salm_jax.data.dataset import as_float
from salm_jax.models import create_model


def test_default_is_small_gray_binary_and_deterministic():
  a = loading.load_dataset("phantom")
  b = loading.load_from_config(loading.default_config())
  assert (a.task, a.num_classes, a.channels, a.image_size) == (tasks.BINARY, 2, 1, 28)
  assert [len(a.splits[s]) for s in ("train", "val", "test")] == [512, 128, 256]
  for s in a.splits:
    np.testing.assert_array_equal(a.splits[s].images, b.splits[s].images)
    np.testing.assert_array_equal(a.splits[s].labels, b.splits[s].labels)
  assert a.train.images.dtype == np.uint8 and a.train.images.shape[1:] == (28, 28)
  assert a.train.labels.dtype == np.uint8 and a.train.labels.shape == (512, 1)
  assert abs(a.train.labels.mean() - 0.5) < 0.01
  other = loading.load_dataset("phantom", phantom={"seed": 1})
  assert not np.array_equal(other.train.images, a.train.images)


def test_test_split_does_not_depend_on_train_size():
  a = phantom.make_phantom(n_train=10, n_val=5, n_test=7)
  b = phantom.make_phantom(n_train=20, n_val=5, n_test=7)
  np.testing.assert_array_equal(a.test.images, b.test.images)


def test_images_are_sparse():
  images = phantom.make_phantom(n_train=64, n_val=1, n_test=1).train.images
  assert (images == 0).mean() > 0.45      # Mostly black background ...
  assert (images > 150).mean() < 0.08     # ... and the bright lesion is small.
  assert (images.reshape(64, -1).max(-1) > 150).all()  # But every image has one.


@pytest.mark.parametrize("task,k,channels", [("multi-class", 4, 1), ("multi-label", 3, 3),
                                             ("binary", 2, 3)])
def test_variants_have_medmnist_layout(task, k, channels):
  ds = phantom.make_phantom(task=task, num_classes=k, channels=channels, size=32,
                            n_train=40, n_val=8, n_test=8)
  shape = (40, 32, 32) if channels == 1 else (40, 32, 32, 3)
  assert ds.train.images.shape == shape and ds.channels == channels
  assert ds.num_classes == k and len(ds.label_names) == k
  if task == "multi-label":
    assert ds.task == tasks.MULTI_LABEL and ds.train.labels.shape == (40, k)
    assert set(np.unique(ds.train.labels)) == {0, 1}
  else:
    assert ds.train.labels.shape == (40, 1)
    assert set(np.unique(ds.train.labels)) == set(range(k))


def test_bad_options_are_clear_errors():
  with pytest.raises(ValueError, match="channels"):
    phantom.make_phantom(channels=2)
  with pytest.raises(ValueError, match="task"):
    phantom.make_phantom(task="regression")
  with pytest.raises(ValueError, match="num_classes"):
    phantom.make_phantom(task="multi-class", num_classes=9)


def test_small_cnn_learns_the_default_phantom():
  ds = loading.load_dataset("phantom")
  model = create_model("small_cnn", num_classes=2, in_channels=1, image_size=28,
                       rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

  @nnx.jit
  def step(model, opt, x, y):
    grads = nnx.grad(lambda m: tasks.loss(m(x), y, ds.task))(model)
    opt.update(model, grads)

  x, y = as_float(ds.train.images), ds.train.labels.astype(np.int32)
  order = np.random.default_rng(0)
  model.train()
  for _ in range(10):  # 160 steps of batch 32: the synthetic config's victim recipe
    perm = order.permutation(len(x))
    for i in range(0, len(x), 32):
      step(model, opt, x[perm[i:i + 32]], y[perm[i:i + 32]])
  model.eval()
  logits = nnx.jit(lambda m, x: m(x))(model, as_float(ds.test.images))
  acc = float(tasks.accuracy(logits, ds.test.labels.astype(np.int32), ds.task))
  assert acc >= 0.9, acc


def test_lesion_contrast_makes_lesions_subtle_and_keeps_determinism():
  make = lambda **kw: phantom.make_phantom(n_train=64, n_val=8, n_test=8, **kw)
  bright, subtle, again = make(), make(lesion_contrast=40), make(lesion_contrast=40)
  np.testing.assert_array_equal(subtle.train.images, again.train.images)
  np.testing.assert_array_equal(subtle.train.labels, bright.train.labels)
  # Bright lesions cover many pixels >= 170; subtle ones (organ + ~40) almost none.
  count = lambda ds: (ds.train.images >= 170).sum((1, 2)).mean()
  assert count(subtle) < 0.5 * count(bright)
  assert "lesion_contrast=40" in subtle.source
