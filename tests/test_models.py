"""Tests of the model zoo: shapes, parameter counts, train/eval modes, jit use.

Full-size models are checked abstractly (nnx.eval_shape: parameter counts and
logits shapes without running a convolution); concrete forward passes and
training steps use thin versions (small `width`) of the same code, because
compiling the backward pass of a full DenseNet-121 takes minutes on 2 CPU cores.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax import lax

from salm_jax import models
from salm_jax.models import common, densenet

NAMES = ("densenet121", "resnet18", "resnet50", "small_cnn", "vgg16", "vit_small")

# Torchvision's published parameter counts (1000 classes, RGB, ImageNet stem).
TV_RESNET18 = 11_689_512
TV_RESNET50 = 25_557_032
TV_DENSENET121 = 7_978_856
TV_VGG16_BN = 138_365_992
# 28 px stem vs ImageNet stem: a 3x3 instead of 7x7 first conv, 3 -> 64 channels.
STEM_SAVING = 64 * 3 * (7 * 7 - 3 * 3)  # 7,680


def _head(features, classes):
  return features * classes + classes


# Pinned at num_classes=2, in_channels=3, image_size=28 (the 28 px stem).
# ResNets / DenseNet: torchvision's count, minus the smaller stem, with a
# 2-class head instead of the 1000-class one. VGG: torchvision's vgg16_bn minus
# its three-layer 25088-4096-4096-1000 classifier, plus a 512 -> 2 head.
_VGG_CLASSIFIER = _head(512 * 7 * 7, 4096) + _head(4096, 4096) + _head(4096, 1000)
_VIT_BLOCK = (2 * 2 * 192 + _head(192, 3 * 192) + _head(192, 192)
              + _head(192, 768) + _head(768, 192))
PINNED_COUNTS = {
    "resnet18": TV_RESNET18 - STEM_SAVING - _head(512, 1000) + _head(512, 2),
    "resnet50": TV_RESNET50 - STEM_SAVING - _head(2048, 1000) + _head(2048, 2),
    "densenet121": TV_DENSENET121 - STEM_SAVING - _head(1024, 1000) + _head(1024, 2),
    "vgg16": TV_VGG16_BN - _VGG_CLASSIFIER + _head(512, 2),
    # patch embed (4x4x3 -> 192), class token, 50 positions, 6 blocks, final LN, head.
    "vit_small": _head(4 * 4 * 3, 192) + 192 + 50 * 192 + 6 * _VIT_BLOCK + 2 * 192 + _head(192, 2),
    # convs 3->16->32->64 (3x3, no bias), 3 BNs, 64 -> 2 head.
    "small_cnn": 9 * (3 * 16 + 16 * 32 + 32 * 64) + 2 * (16 + 32 + 64) + _head(64, 2),
}
EXPECTED_COUNTS = {"resnet18": 11_169_858, "resnet50": 23_504_450, "densenet121": 6_948_226,
                   "vgg16": 14_724_162, "vit_small": 2_689_154, "small_cnn": 23_826}


def _abstract_run(name, *, num_classes, in_channels, image_size, **kwargs):
  """(number of nnx.Params, logits ShapeDtypeStruct) of a batch-2 forward, no FLOPs spent."""
  def build_and_apply():
    model = models.create_model(name, num_classes=num_classes, in_channels=in_channels,
                                image_size=image_size, rngs=nnx.Rngs(0), **kwargs)
    model.eval()
    logits = model(jnp.zeros((2, image_size, image_size, in_channels)))
    return nnx.state(model, nnx.Param), logits
  params, logits = nnx.eval_shape(build_and_apply)
  return sum(p.size for p in jax.tree.leaves(params)), logits


def test_model_names():
  assert models.model_names() == NAMES


def test_pinned_counts_agree_with_torchvision_arithmetic():
  assert PINNED_COUNTS == EXPECTED_COUNTS


@pytest.mark.parametrize("name", NAMES)
def test_full_size_param_count_and_logits_shape(name):
  count, logits = _abstract_run(name, num_classes=2, in_channels=3, image_size=28)
  assert count == EXPECTED_COUNTS[name]
  chex.assert_shape(logits, (2, 2))


@pytest.mark.parametrize("name,torchvision", [("resnet18", TV_RESNET18),
                                              ("resnet50", TV_RESNET50)])
def test_imagenet_stem_matches_torchvision_exactly(name, torchvision):
  count, logits = _abstract_run(name, num_classes=1000, in_channels=3, image_size=224)
  assert count == torchvision
  chex.assert_shape(logits, (2, 1000))


def test_stem_depends_on_image_size():
  small = models.create_model("resnet18", num_classes=2, in_channels=1, image_size=28,
                              width=4, rngs=nnx.Rngs(0))
  large = models.create_model("resnet18", num_classes=2, in_channels=1, image_size=64,
                              width=4, rngs=nnx.Rngs(0))
  chex.assert_shape(small.stem_conv.kernel[...], (3, 3, 1, 4))
  chex.assert_shape(large.stem_conv.kernel[...], (7, 7, 1, 4))
  # 64 px: /2 by the stem conv, /2 by the max-pool -> 16 px into stage 1.
  stem_out = nnx.eval_shape(lambda: large.stem_conv(jnp.zeros((1, 64, 64, 1))))
  chex.assert_shape(stem_out, (1, 32, 32, 4))
  # DenseNet has the same two stems.
  for size, kernel in ((28, 3), (64, 7)):
    net = _thin_model("densenet_shallow", 3, size, 5)
    net.eval()
    chex.assert_shape(net.stem_conv.kernel[...], (kernel, kernel, 3, 8))
    chex.assert_shape(nnx.eval_shape(lambda: net(jnp.zeros((2, size, size, 3)))), (2, 5))


@nnx.jit
def _train_step(model, optimizer, x, y):
  def loss_fn(model):
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits
  (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
  optimizer.update(model, grads)
  return loss, logits, grads


@nnx.jit
def _forward(model, x):
  return model(x)


def _thin_model(name, in_channels, image_size, num_classes):
  rngs = nnx.Rngs(params=0, dropout=1)
  if name == "densenet_shallow":  # densenet121's layers, 1 per block (see module doc).
    return densenet.DenseNet(block_sizes=(1, 1, 1, 1), num_classes=num_classes,
                             in_channels=in_channels, image_size=image_size,
                             growth_rate=4, width=8, rngs=rngs)
  kwargs = {"vit_small": dict(dim=16, depth=2, heads=2)}.get(name, dict(width=4))
  return models.create_model(name, num_classes=num_classes, in_channels=in_channels,
                             image_size=image_size, rngs=rngs, **kwargs)


def _leaves(model, kind):
  return [np.asarray(v) for v in jax.tree.leaves(nnx.state(model, kind))]


@pytest.mark.parametrize("name,in_channels,image_size", [
    ("small_cnn", 1, 28), ("resnet18", 3, 28), ("resnet18", 1, 64), ("resnet50", 1, 28),
    ("vgg16", 3, 28), ("densenet_shallow", 1, 28), ("vit_small", 3, 28)])
def test_train_step_then_eval(name, in_channels, image_size):
  num_classes = 3
  model = _thin_model(name, in_channels, image_size, num_classes)
  optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.uniform(keys[0], (2, image_size, image_size, in_channels))
  y = jnp.array([0, 2])
  params0, stats0 = _leaves(model, nnx.Param), _leaves(model, nnx.BatchStat)

  loss, logits, grads = _train_step(model, optimizer, x, y)
  chex.assert_shape(logits, (2, num_classes))
  chex.assert_tree_all_finite((loss, grads))
  assert any(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(grads))
  assert any(not np.array_equal(a, b) for a, b in zip(params0, _leaves(model, nnx.Param)))
  stats1 = _leaves(model, nnx.BatchStat)
  assert all(not np.array_equal(a, b) for a, b in zip(stats0, stats1))  # running stats moved

  model.eval()
  other = x.at[1].set(jax.random.uniform(keys[1], x.shape[1:]))
  out = _forward(model, x)
  chex.assert_shape(out, (2, num_classes))
  np.testing.assert_array_equal(out, _forward(model, x))  # deterministic
  np.testing.assert_allclose(out[0], _forward(model, other)[0], rtol=1e-5, atol=1e-6)
  for a, b in zip(stats1, _leaves(model, nnx.BatchStat)):
    np.testing.assert_array_equal(a, b)  # eval does not touch the running stats


def test_train_mode_batchnorm_is_batch_dependent():
  """The counterpart of the eval check above: in train mode row 0 depends on row 1."""
  model = _thin_model("small_cnn", 1, 28, 3)
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  out = _forward(model, x)
  changed = _forward(model, x.at[1].set(1.0 - x[1]))
  assert np.abs(np.asarray(out[0] - changed[0])).max() > 1e-4


def test_vit_dropout_is_random_in_train_and_off_in_eval():
  model = _thin_model("vit_small", 1, 28, 3)
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  assert not np.allclose(model(x), model(x))
  model.eval()
  np.testing.assert_array_equal(model(x), model(x))


def test_split_merge_input_gradient_under_jit():
  """The noise generator's pattern: a pure jitted function of (state, x)."""
  model = _thin_model("small_cnn", 1, 28, 3)
  model.eval()
  graphdef, state = nnx.split(model)

  @jax.jit
  def input_grad(state, x, y):
    def loss(x):
      logits = nnx.merge(graphdef, state)(x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()
    return jax.grad(loss)(x)

  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  y = jnp.array([0, 1])
  g = input_grad(state, x, y)
  chex.assert_shape(g, x.shape)
  chex.assert_tree_all_finite(g)
  # Per-example: example 0's gradient does not depend on example 1 (eval mode).
  g_other = input_grad(state, x.at[1].set(0.0), y)
  np.testing.assert_allclose(g[0], g_other[0], rtol=1e-4, atol=1e-7)
  # Same gradient as differentiating the stateful module itself, outside jit.
  def direct(x):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).sum()
  np.testing.assert_allclose(g, jax.grad(direct)(x), rtol=1e-4, atol=1e-6)


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="Unknown model 'resnet34'"):
    models.create_model("resnet34", num_classes=2, in_channels=1, image_size=28,
                        rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="no option.*depth"):
    models.create_model("resnet18", num_classes=2, in_channels=1, image_size=28,
                        rngs=nnx.Rngs(0), depth=3)
  with pytest.raises(ValueError, match="patch_size 5 does not divide image_size 28"):
    models.create_model("vit_small", num_classes=2, in_channels=1, image_size=28,
                        rngs=nnx.Rngs(0), patch_size=5)
  assert models.model_options("resnet18") == ("width",)


@pytest.mark.parametrize("size,stride", [(1, 1), (2, 1), (3, 1), (5, 1), (2, 2)])
def test_conv_matches_xla_on_maps_smaller_than_the_kernel(size, stride):
  """The patch matmul that stands in for XLA's slow small-map conv gives XLA's values and gradients."""
  k1, k2 = jax.random.split(jax.random.key(0))
  x = jax.random.normal(k1, (2, size, size, 6))
  w = jax.random.normal(k2, (3, 3, 6, 5)) * 0.3
  layout = dict(dimension_numbers=lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC")))
  def ours(x, w):
    return common.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)), **layout)
  def xla(x, w):
    return lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)), **layout)
  np.testing.assert_allclose(ours(x, w), xla(x, w), atol=1e-5)
  grads = lambda f: jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1))(x, w)
  chex.assert_trees_all_close(grads(ours), grads(xla), atol=1e-4)
  layer = common.conv(6, 5, 3, stride=stride, use_bias=True, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(layer(x), xla(x, layer.kernel[...]) + layer.bias[...], atol=1e-5)
