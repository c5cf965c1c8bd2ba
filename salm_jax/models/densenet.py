"""DenseNet-121, with the stem chosen by image size.

torchvision's DenseNet-121 (dense blocks of 6, 12, 24, 16 BN-ReLU-conv layers,
growth rate 32, bottleneck 4 * growth, transitions halving channels and
resolution). As for the ResNets, images up to 32 px get a 3x3 stride-1 stem
without max-pool (28 px -> 28, 14, 7, 3 px through the blocks) and larger ones
the 7x7 stride-2 stem with 3x3 max-pool.

`growth_rate` and `width` (the stem's channels, 2 * growth in the paper) are
exposed so tests and CPU runs can build a thin DenseNet of the same depth.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from salm_jax.models import common

_BOTTLENECK = 4  # 1x1 conv width = _BOTTLENECK * growth_rate.


class DenseLayer(nnx.Module):
  """BN-ReLU-1x1 conv, BN-ReLU-3x3 conv; its `growth_rate` outputs are appended."""

  def __init__(self, in_features: int, growth_rate: int, *, rngs: nnx.Rngs):
    inner = _BOTTLENECK * growth_rate
    self.norm1 = common.batch_norm(in_features, rngs=rngs)
    self.conv1 = common.conv(in_features, inner, 1, rngs=rngs)
    self.norm2 = common.batch_norm(inner, rngs=rngs)
    self.conv2 = common.conv(inner, growth_rate, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.conv1(nnx.relu(self.norm1(x)))
    y = self.conv2(nnx.relu(self.norm2(y)))
    return jnp.concatenate([x, y], axis=-1)


class Transition(nnx.Module):
  """BN-ReLU-1x1 conv halving the channels, then 2x2 average pool."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    self.norm = common.batch_norm(in_features, rngs=rngs)
    self.conv = common.conv(in_features, out_features, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.conv(nnx.relu(self.norm(x)))
    return nnx.avg_pool(x, (2, 2), strides=(2, 2))


class DenseNet(nnx.Module):
  """Stem, dense blocks joined by transitions, final BN-ReLU, pool, linear head."""

  def __init__(self, *, block_sizes: Sequence[int], num_classes: int, in_channels: int,
               image_size: int, growth_rate: int = 32, width: int = 64,
               rngs: nnx.Rngs):
    self.small_stem = common.is_small_image(image_size)
    kernel, stride = (3, 1) if self.small_stem else (7, 2)
    self.stem_conv = common.conv(in_channels, width, kernel, stride=stride, rngs=rngs)
    self.stem_norm = common.batch_norm(width, rngs=rngs)
    layers = []
    features = width
    for i, num_layers in enumerate(block_sizes):
      for _ in range(num_layers):
        layers.append(DenseLayer(features, growth_rate, rngs=rngs))
        features += growth_rate
      if i < len(block_sizes) - 1:
        layers.append(Transition(features, features // 2, rngs=rngs))
        features //= 2
    self.layers = nnx.List(layers)
    self.final_norm = common.batch_norm(features, rngs=rngs)
    self.head = common.linear(features, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.stem_norm(self.stem_conv(common.normalize(x))))
    if not self.small_stem:
      x = common.max_pool_3x3_s2(x)
    for layer in self.layers:
      x = layer(x)
    x = nnx.relu(self.final_norm(x))
    return self.head(jnp.mean(x, axis=(1, 2)))


def densenet121(*, num_classes: int, in_channels: int, image_size: int, rngs: nnx.Rngs,
                growth_rate: int = 32, width: int = 64) -> DenseNet:
  """DenseNet-121: dense blocks (6, 12, 24, 16)."""
  return DenseNet(block_sizes=(6, 12, 24, 16), num_classes=num_classes,
                  in_channels=in_channels, image_size=image_size,
                  growth_rate=growth_rate, width=width, rngs=rngs)
