"""A small Vision Transformer for 28 px (and larger) medical images.

Patch 4 at 28 px gives a 7x7 grid of 49 tokens, about what ViT-B/16 sees at
224 px relative to its image, so attention has a meaningful grid to work
with. Defaults are ViT-Tiny's width (dim 192, 3 heads) at half its depth (6
blocks): a transformer victim that is small enough to train on CPU. Above
32 px the default patch is image_size // 8 (an 8x8 grid).

Pre-norm blocks, a class token, learned position embeddings, GELU MLP.
Dropout (on embeddings and after attention / MLP) uses the `dropout` stream
of `rngs` and is off after `.eval()`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from salm_jax.models import common


def default_patch_size(image_size: int) -> int:
  """4 px at MedMNIST's 28 px; image_size // 8 (an 8x8 grid) when larger."""
  return 4 if common.is_small_image(image_size) else max(1, image_size // 8)


class SelfAttention(nnx.Module):
  """Multi-head self-attention with a fused qkv projection."""

  def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs):
    if dim % heads:
      raise ValueError(f"ViT dim {dim} is not divisible by heads {heads}.")
    self.heads = heads
    self.qkv = common.linear(dim, 3 * dim, rngs=rngs)
    self.proj = common.linear(dim, dim, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, d = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)
    out = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
    return self.proj(out.reshape(b, n, d))


class EncoderBlock(nnx.Module):
  """x + drop(attn(LN(x))); x + drop(mlp(LN(x)))."""

  def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float, *,
               rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
    self.attn = SelfAttention(dim, heads, rngs=rngs)
    self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
    self.fc1 = common.linear(dim, mlp_dim, rngs=rngs)
    self.fc2 = common.linear(mlp_dim, dim, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x + self.dropout(self.attn(self.norm1(x)))
    y = self.fc2(self.dropout(nnx.gelu(self.fc1(self.norm2(x)))))
    return x + self.dropout(y)


class ViT(nnx.Module):
  """Patch embedding + class token + position embedding, encoder, head on the class token."""

  def __init__(self, *, num_classes: int, in_channels: int, image_size: int,
               patch_size: int | None = None, dim: int = 192, depth: int = 6,
               heads: int = 3, mlp_ratio: int = 4, dropout: float = 0.1,
               rngs: nnx.Rngs):
    patch_size = patch_size or default_patch_size(image_size)
    if image_size % patch_size:
      raise ValueError(f"ViT patch_size {patch_size} does not divide image_size {image_size}.")
    num_patches = (image_size // patch_size)**2
    self.image_size = image_size
    self.patch_embed = nnx.Conv(in_channels, dim, (patch_size, patch_size),
                                strides=(patch_size, patch_size), padding="VALID",
                                kernel_init=common.lecun_normal_hwio, rngs=rngs)
    init = common.normal_init(lambda shape: 0.02)
    self.cls_token = nnx.Param(init(rngs.params(), (1, 1, dim)))
    self.pos_embed = nnx.Param(init(rngs.params(), (1, num_patches + 1, dim)))
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.blocks = nnx.List([EncoderBlock(dim, heads, mlp_ratio * dim, dropout, rngs=rngs)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(dim, rngs=rngs)
    self.head = common.linear(dim, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.shape[1:3] != (self.image_size, self.image_size):
      raise ValueError(f"ViT built for {self.image_size} px images got shape {x.shape}.")
    x = self.patch_embed(common.normalize(x))
    b, h, w, d = x.shape
    cls = jnp.broadcast_to(self.cls_token[...], (b, 1, d))
    x = jnp.concatenate([cls, x.reshape(b, h * w, d)], axis=1) + self.pos_embed[...]
    x = self.dropout(x)
    for block in self.blocks:
      x = block(x)
    return self.head(self.norm(x)[:, 0])


def vit_small(*, num_classes: int, in_channels: int, image_size: int, rngs: nnx.Rngs,
              patch_size: int | None = None, dim: int = 192, depth: int = 6,
              heads: int = 3, mlp_ratio: int = 4, dropout: float = 0.1) -> ViT:
  """The small ViT (dim 192, depth 6, 3 heads, patch 4 at 28 px)."""
  return ViT(num_classes=num_classes, in_channels=in_channels, image_size=image_size,
             patch_size=patch_size, dim=dim, depth=depth, heads=heads,
             mlp_ratio=mlp_ratio, dropout=dropout, rngs=rngs)
