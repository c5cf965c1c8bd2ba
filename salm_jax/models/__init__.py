"""The Flax NNX model zoo, chosen by name in configs.

Every model is built as `create_model(name, num_classes=..., in_channels=...,
image_size=..., rngs=...)`, takes NHWC float images in [0, 1] (normalization is
inside, see `common.py`) and returns logits (B, num_classes). Train / inference
mode is switched with `model.train()` / `model.eval()` (BatchNorm, dropout).
"""
from __future__ import annotations

from typing import Callable

from flax import nnx

from salm_jax.models.small_cnn import SmallCNN

_REGISTRY: dict[str, Callable[..., nnx.Module]] = {
    "small_cnn": SmallCNN,
}


def model_names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def create_model(name: str, *, num_classes: int, in_channels: int, image_size: int,
                 rngs: nnx.Rngs, **kwargs) -> nnx.Module:
  """Builds model `name`. `image_size` picks the stem (28 px stem vs standard)."""
  if name not in _REGISTRY:
    raise ValueError(f"Unknown model {name!r}; available: {', '.join(model_names())}.")
  builder = _REGISTRY[name]
  if name != "small_cnn":
    kwargs["image_size"] = image_size
  return builder(num_classes=num_classes, in_channels=in_channels, rngs=rngs, **kwargs)
