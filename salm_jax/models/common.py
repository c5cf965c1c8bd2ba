"""What every model in the zoo shares: its input convention and its layers.

All models take NHWC float images in [0, 1], the space the noise lives in,
and normalize inside with MedMNIST's mean 0.5 / std 0.5. So the surrogate, the
victims and the noise generator never disagree on preprocessing.

The layer factories below fix the choices the torchvision reference models
make (explicit symmetric padding instead of XLA's asymmetric 'SAME' for strided
convolutions, He fan-out init, BatchNorm momentum 0.9 == PyTorch's 0.1), so
that parameter counts and feature-map sizes match the published architectures.

Weights are drawn by `normal_init`, which samples fixed-size chunks from one
jitted function instead of one `jax.random.normal` per weight shape: on CPU,
XLA needs seconds to compile threefry sampling for each new shape, so the
stock initializers made building a ResNet-18 take about a minute; with chunks
it compiles once per process.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
from flax import nnx

MEAN = 0.5
STD = 0.5

# Images up to this size get the MedMNIST / CIFAR stem (3x3 stride-1 conv, no
# max-pool); larger ones the ImageNet stem (7x7 stride-2 conv + 3x3 max-pool).
SMALL_IMAGE_MAX = 32

BN_MOMENTUM = 0.9

_CHUNK = 1 << 16


@jax.jit
def _normal_chunk(key: jax.Array) -> jax.Array:
  return jax.random.normal(key, (_CHUNK,), jnp.float32)


def normal_init(std_fn):
  """A Flax initializer drawing N(0, std_fn(shape)^2), compiled once for every shape."""
  def init(key, shape, dtype=jnp.float32):
    std = std_fn(shape)
    if isinstance(key, jax.core.Tracer):  # Inside jit / eval_shape: trace normally.
      return (std * jax.random.normal(key, shape)).astype(dtype)
    size = math.prod(shape)
    chunks = [np.asarray(_normal_chunk(jax.random.fold_in(key, i)))
              for i in range(-(-size // _CHUNK))]
    flat = np.concatenate(chunks)[:size] if chunks else np.zeros((0,), np.float32)
    return jnp.asarray((std * flat).reshape(shape), dtype)
  return init


def _he_fan_out_std(shape) -> float:
  """sqrt(2 / fan_out) for an HWIO kernel (PyTorch's kaiming_normal_, mode='fan_out')."""
  return math.sqrt(2.0 / (math.prod(shape[:-2]) * shape[-1]))


def _lecun_std(shape) -> float:
  """sqrt(1 / fan_in) for an (in, out) kernel."""
  return math.sqrt(1.0 / shape[0])


def _lecun_hwio_std(shape) -> float:
  """sqrt(1 / fan_in) for an HWIO kernel."""
  return math.sqrt(1.0 / math.prod(shape[:-1]))


he_normal_fan_out = normal_init(_he_fan_out_std)
lecun_normal = normal_init(_lecun_std)
lecun_normal_hwio = normal_init(_lecun_hwio_std)


def normalize(x: jax.Array) -> jax.Array:
  return (x - MEAN) / STD


def is_small_image(image_size: int) -> bool:
  """True when `image_size` gets the 28 px (MedMNIST / CIFAR) stem."""
  if image_size < 1:
    raise ValueError(f"image_size must be a positive number of pixels, got {image_size}.")
  return image_size <= SMALL_IMAGE_MAX


def conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs) -> jax.Array:
  """`lax.conv_general_dilated`, as one matmul over patches when a map is smaller than the kernel.

  XLA's CPU convolution takes a slow path when the feature map is smaller than
  the kernel (VGG-16's last stage is 2 x 2 px at 28 px inputs); it made a
  full-width VGG-16 train step 5x slower (`benchmarks/bench_models.py`).
  Every other case, and any layout but NHWC / HWIO, goes to XLA's own conv.
  """
  if not _smaller_than_kernel(lhs, rhs, window_strides, padding, kwargs):
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs)
  kh, kw, cin, cout = rhs.shape
  x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  patches = jnp.concatenate([x[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)],
                            axis=-1)  # (n, ho, wo, kh * kw * cin), in HWIO order.
  return lax.dot_general(patches, rhs.reshape(kh * kw * cin, cout), (((3,), (0,)), ((), ())),
                         precision=kwargs.get("precision"),
                         preferred_element_type=kwargs.get("preferred_element_type"))


def _smaller_than_kernel(lhs, rhs, window_strides, padding, kwargs) -> bool:
  """A stride-1, undilated, ungrouped NHWC / HWIO conv whose map is smaller than its kernel."""
  if rhs.ndim != 4 or isinstance(padding, str) or tuple(window_strides) != (1, 1):
    return False
  nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  plain = (kwargs.get("dimension_numbers") == nhwc
           and kwargs.get("feature_group_count", 1) == 1
           and all(tuple(kwargs.get(d) or (1, 1)) == (1, 1)
                   for d in ("lhs_dilation", "rhs_dilation")))
  return plain and (lhs.shape[1] < rhs.shape[0] or lhs.shape[2] < rhs.shape[1])


def conv(in_features: int, out_features: int, kernel: int, *, stride: int = 1,
         use_bias: bool = False, kernel_init=None, rngs: nnx.Rngs) -> nnx.Conv:
  """A square conv with PyTorch-style symmetric padding `kernel // 2`.

  `kernel_init` defaults to He normal (fan out), torchvision's ResNet init.
  """
  pad = kernel // 2
  return nnx.Conv(in_features, out_features, (kernel, kernel), strides=(stride, stride),
                  padding=((pad, pad), (pad, pad)), use_bias=use_bias,
                  kernel_init=kernel_init or he_normal_fan_out,
                  conv_general_dilated=conv_general_dilated, rngs=rngs)


def linear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
  """A dense layer with LeCun-normal weights and zero bias."""
  return nnx.Linear(in_features, out_features, kernel_init=lecun_normal, rngs=rngs)


def batch_norm(num_features: int, *, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(num_features, momentum=BN_MOMENTUM, epsilon=1e-5, rngs=rngs)


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """The ImageNet stem's 3x3 stride-2 max-pool with padding 1 (PyTorch semantics)."""
  return nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
