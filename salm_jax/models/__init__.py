"""The Flax NNX model zoo, chosen by name in configs.

Every model is built as `create_model(name, num_classes=..., in_channels=...,
image_size=..., rngs=...)`, takes NHWC float images in [0, 1] (normalization is
inside, see `common.py`) and returns logits (B, num_classes). Train / inference
mode is switched with `model.train()` / `model.eval()` (BatchNorm, dropout).

Names (see docs/models.md):
  small_cnn    3 conv-BN blocks, `width` (16): the CPU surrogate / test model.
  resnet18     `width` (64); 28 px stem up to 32 px, ImageNet stem above.
  resnet50     `width` (64); same stems.
  vgg16        VGG-16-BN features, global pool + linear head; `width` (64).
  densenet121  `growth_rate` (32), `width` (64); same stems as ResNet.
  vit_small    `patch_size` (4 at 28 px), `dim` (192), `depth` (6), `heads` (3),
               `mlp_ratio` (4), `dropout` (0.1).
"""
from __future__ import annotations

import inspect
from typing import Callable

from flax import nnx

from salm_jax.models.densenet import densenet121
from salm_jax.models.resnet import resnet18, resnet50
from salm_jax.models.small_cnn import small_cnn
from salm_jax.models.vgg import vgg16
from salm_jax.models.vit import vit_small

_REGISTRY: dict[str, Callable[..., nnx.Module]] = {
    "small_cnn": small_cnn,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg16": vgg16,
    "densenet121": densenet121,
    "vit_small": vit_small,
}

_REQUIRED = ("num_classes", "in_channels", "rngs")


def model_names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def model_options(name: str) -> tuple[str, ...]:
  """The keyword options (e.g. `width`) that model `name` accepts besides the required ones."""
  params = inspect.signature(_builder(name)).parameters
  return tuple(p for p in params if p not in _REQUIRED + ("image_size",))


def create_model(name: str, *, num_classes: int, in_channels: int, image_size: int,
                 rngs: nnx.Rngs, **kwargs) -> nnx.Module:
  """Builds model `name`. `image_size` picks the stem (28 px stem vs standard).

  Builders that do not depend on the image size (small_cnn, vgg16) do not take
  it; it is passed only to those whose signature names it.
  """
  builder = _builder(name)
  unknown = sorted(set(kwargs) - set(model_options(name)))
  if unknown:
    raise ValueError(f"Model {name!r} has no option(s) {unknown}; "
                     f"it takes {list(model_options(name))}.")
  if num_classes < 1 or in_channels < 1:
    raise ValueError(f"Model {name!r} needs num_classes >= 1 and in_channels >= 1, "
                     f"got num_classes={num_classes}, in_channels={in_channels}.")
  if "image_size" in inspect.signature(builder).parameters:
    kwargs["image_size"] = image_size
  return builder(num_classes=num_classes, in_channels=in_channels, rngs=rngs, **kwargs)


def _builder(name: str) -> Callable[..., nnx.Module]:
  if name not in _REGISTRY:
    raise ValueError(f"Unknown model {name!r}; available: {', '.join(model_names())}.")
  return _REGISTRY[name]
