"""A small BatchNorm CNN: the CPU-sized surrogate and victim.

Three conv blocks and a global average pool. At width 16 it trains on 28 px
images in seconds on two CPU cores, yet it is a real convolutional classifier
with BatchNorm, so the noise it shapes behaves like the noise of a ResNet.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from salm_jax.models import common


class SmallCNN(nnx.Module):
  """conv-BN-ReLU x3 (widths w, 2w, 4w), pooling between blocks, then a linear head."""

  def __init__(self, *, num_classes: int, in_channels: int, width: int = 16,
               rngs: nnx.Rngs):
    widths = (width, 2 * width, 4 * width)
    chans = (in_channels,) + widths
    self.convs = nnx.List([
        common.conv(chans[i], chans[i + 1], 3, kernel_init=common.lecun_normal_hwio, rngs=rngs)
        for i in range(3)])
    self.norms = nnx.List([common.batch_norm(c, rngs=rngs) for c in widths])
    self.head = common.linear(widths[-1], num_classes, rngs=rngs)

  # LeCun (fan-in) conv init: pre-BatchNorm variances start near 1, where the
  # running variance starts, so inference mode is right after a few dozen
  # steps. He fan-out init (tiny variances on 1-channel inputs) left the
  # running statistics off by 5x after 40 steps: train-mode accuracy 0.99,
  # inference-mode 0.5 on the phantom (tests/test_data_phantom.py).

  def __call__(self, x: jax.Array) -> jax.Array:
    x = common.normalize(x)
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      x = nnx.relu(norm(conv(x)))
      if i < 2:
        x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
    return self.head(jnp.mean(x, axis=(1, 2)))


def small_cnn(*, num_classes: int, in_channels: int, rngs: nnx.Rngs,
              width: int = 16) -> SmallCNN:
  return SmallCNN(num_classes=num_classes, in_channels=in_channels, width=width, rngs=rngs)
