"""VGG-16 with BatchNorm, sized for small medical images.

The 13 conv layers are torchvision's `vgg16_bn` features (3x3 convs with
bias, BN, ReLU; a 2x2 max-pool after each of the five stages). Two changes
make it fit 28 px inputs and MedMNIST-sized data, as CIFAR versions of VGG do:
the pools round up (PyTorch's `ceil_mode=True`, so 28 -> 14 -> 7 -> 4 -> 2 -> 1
rather than collapsing to 0 px), and the 120 M-parameter 4096-wide classifier
is replaced by a global average pool and one linear layer.

`width` is the first stage's channels (64); stages have w, 2w, 4w, 8w, 8w.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from salm_jax.models import common

# Convs per stage of VGG-16 and each stage's width as a multiple of `width`.
_STAGES = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))


class VGG16(nnx.Module):
  """VGG-16-BN features, global average pool, linear head."""

  def __init__(self, *, num_classes: int, in_channels: int, width: int = 64,
               rngs: nnx.Rngs):
    convs, norms = [], []
    self.stage_sizes = tuple(n for n, _ in _STAGES)
    features = in_channels
    for num_convs, multiple in _STAGES:
      for _ in range(num_convs):
        out = width * multiple
        convs.append(common.conv(features, out, 3, use_bias=True, rngs=rngs))
        norms.append(common.batch_norm(out, rngs=rngs))
        features = out
    self.convs = nnx.List(convs)
    self.norms = nnx.List(norms)
    self.head = common.linear(features, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = common.normalize(x)
    layer = 0
    for num_convs in self.stage_sizes:
      for _ in range(num_convs):
        x = nnx.relu(self.norms[layer](self.convs[layer](x)))
        layer += 1
      x = _max_pool_2x2_ceil(x)
    return self.head(jnp.mean(x, axis=(1, 2)))


def _max_pool_2x2_ceil(x: jax.Array) -> jax.Array:
  """2x2 stride-2 max-pool that keeps a last odd row/column (ceil mode)."""
  if x.shape[1] == 1 and x.shape[2] == 1:
    return x
  pad_h, pad_w = x.shape[1] % 2, x.shape[2] % 2
  return nnx.max_pool(x, (2, 2), strides=(2, 2), padding=((0, pad_h), (0, pad_w)))


def vgg16(*, num_classes: int, in_channels: int, rngs: nnx.Rngs, width: int = 64) -> VGG16:
  return VGG16(num_classes=num_classes, in_channels=in_channels, width=width, rngs=rngs)
