"""ResNet-18 and ResNet-50, with the stem chosen by image size.

MedMNIST's benchmark trains ResNets on 28 px images with a 3x3 stride-1 first
conv and no max-pool (otherwise a 28 px image would be 7 px after the stem);
at 64 px and larger the standard ImageNet stem (7x7 stride-2 conv + 3x3
max-pool) is used. Everything after the stem is torchvision's ResNet (v1.5:
the stride of a bottleneck sits on its 3x3 conv), so parameter counts can be
checked against torchvision's.

`width` is the channel count of the first stage (64 in the paper); stages have
width, 2*width, 4*width, 8*width channels. A width-16 ResNet-18 is a cheap CPU
surrogate.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from salm_jax.models import common


class _Downsample(nnx.Module):
  """1x1 conv + BN on the shortcut when the shape changes."""

  def __init__(self, in_features: int, out_features: int, stride: int, *, rngs: nnx.Rngs):
    self.conv = common.conv(in_features, out_features, 1, stride=stride, rngs=rngs)
    self.norm = common.batch_norm(out_features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.norm(self.conv(x))


def _shortcut(in_features: int, out_features: int, stride: int, rngs: nnx.Rngs):
  if stride == 1 and in_features == out_features:
    return None
  return _Downsample(in_features, out_features, stride, rngs=rngs)


class BasicBlock(nnx.Module):
  """Two 3x3 conv-BN layers with an identity (or projected) shortcut."""

  expansion = 1

  def __init__(self, in_features: int, width: int, stride: int, *, rngs: nnx.Rngs):
    self.conv1 = common.conv(in_features, width, 3, stride=stride, rngs=rngs)
    self.norm1 = common.batch_norm(width, rngs=rngs)
    self.conv2 = common.conv(width, width, 3, rngs=rngs)
    self.norm2 = common.batch_norm(width, rngs=rngs)
    self.shortcut = _shortcut(in_features, width, stride, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    residual = x if self.shortcut is None else self.shortcut(x)
    return nnx.relu(y + residual)


class Bottleneck(nnx.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut."""

  expansion = 4

  def __init__(self, in_features: int, width: int, stride: int, *, rngs: nnx.Rngs):
    out_features = width * self.expansion
    self.conv1 = common.conv(in_features, width, 1, rngs=rngs)
    self.norm1 = common.batch_norm(width, rngs=rngs)
    self.conv2 = common.conv(width, width, 3, stride=stride, rngs=rngs)
    self.norm2 = common.batch_norm(width, rngs=rngs)
    self.conv3 = common.conv(width, out_features, 1, rngs=rngs)
    self.norm3 = common.batch_norm(out_features, rngs=rngs)
    self.shortcut = _shortcut(in_features, out_features, stride, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.norm1(self.conv1(x)))
    y = nnx.relu(self.norm2(self.conv2(y)))
    y = self.norm3(self.conv3(y))
    residual = x if self.shortcut is None else self.shortcut(x)
    return nnx.relu(y + residual)


class ResNet(nnx.Module):
  """Stem, four stages of residual blocks, global average pool, linear head."""

  def __init__(self, *, block: type[BasicBlock] | type[Bottleneck],
               stage_sizes: Sequence[int], num_classes: int, in_channels: int,
               image_size: int, width: int = 64, rngs: nnx.Rngs):
    self.small_stem = common.is_small_image(image_size)
    kernel, stride = (3, 1) if self.small_stem else (7, 2)
    self.stem_conv = common.conv(in_channels, width, kernel, stride=stride, rngs=rngs)
    self.stem_norm = common.batch_norm(width, rngs=rngs)
    blocks = []
    features = width
    for stage, num_blocks in enumerate(stage_sizes):
      stage_width = width * 2**stage
      for i in range(num_blocks):
        stride = 2 if stage > 0 and i == 0 else 1
        blocks.append(block(features, stage_width, stride, rngs=rngs))
        features = stage_width * block.expansion
    self.blocks = nnx.List(blocks)
    self.head = common.linear(features, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.stem_norm(self.stem_conv(common.normalize(x))))
    if not self.small_stem:
      x = common.max_pool_3x3_s2(x)
    for block in self.blocks:
      x = block(x)
    return self.head(jnp.mean(x, axis=(1, 2)))


def resnet18(*, num_classes: int, in_channels: int, image_size: int, rngs: nnx.Rngs,
             width: int = 64) -> ResNet:
  """ResNet-18: BasicBlocks (2, 2, 2, 2)."""
  return ResNet(block=BasicBlock, stage_sizes=(2, 2, 2, 2), num_classes=num_classes,
                in_channels=in_channels, image_size=image_size, width=width, rngs=rngs)


def resnet50(*, num_classes: int, in_channels: int, image_size: int, rngs: nnx.Rngs,
             width: int = 64) -> ResNet:
  """ResNet-50: Bottlenecks (3, 4, 6, 3)."""
  return ResNet(block=Bottleneck, stage_sizes=(3, 4, 6, 3), num_classes=num_classes,
                in_channels=in_channels, image_size=image_size, width=width, rngs=rngs)
