"""Stride-2 convolutions whose input gradient skips the zeros XLA would multiply.

Why: XLA lowers the input gradient of a stride-2 convolution to a stride-1
convolution over the output gradient *dilated* with zeros (`lhs_dilate=2x2`
in the HLO), and on XLA:CPU the kernels compute on those zeros: a 3x3
stride-2 layer's input gradient (64 -> 128 channels, 28 px, batch 128) took
66 ms against 21 ms for its forward pass. The PGD round and the saliency
differentiate every surrogate step with respect to the images, so that is
paid three times per ResNet-18 step. Split by the parity of the input
position (its "phase"), the same gradient is four small dense stride-1
convolutions of the output gradient, each with the kernel taps of that
parity: the same sums, without the zeros.

`conv_general_dilated` has `jax.lax.conv_general_dilated`'s signature, so it
is what `nnx.Conv(..., conv_general_dilated=...)` takes; it falls back to
the lax function for anything but a plain stride-2 NHWC/HWIO convolution.
The weight gradient keeps XLA's own rule. A `jax.custom_vjp`: reverse mode
only (nothing in this library uses forward-mode derivatives of a model).
"""
from __future__ import annotations

import functools

import jax
from jax import lax
import jax.numpy as jnp

_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """`lax.conv_general_dilated`, with the phase-split input gradient for stride 2."""
  if not _applies(lhs, rhs, window_strides, lhs_dilation, rhs_dilation, dimension_numbers,
                  feature_group_count, kwargs):
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  pads = tuple(tuple(int(p) for p in pair) for pair in padding)
  return _conv_stride2(lhs, rhs, pads, precision)


def _applies(lhs, rhs, strides, lhs_dilation, rhs_dilation, dimension_numbers, groups,
             kwargs) -> bool:
  plain = lambda d: d is None or tuple(d) == (1, 1)
  extra = {k: v for k, v in kwargs.items() if v is not None}
  return (lhs.ndim == 4 and tuple(strides) == (2, 2) and plain(lhs_dilation)
          and plain(rhs_dilation) and groups == 1 and not extra
          and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
          == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))


def _forward(x, w, pads, precision):
  return lax.conv_general_dilated(x, w, (2, 2), pads, dimension_numbers=_NHWC,
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_stride2(x, w, pads, precision):
  return _forward(x, w, pads, precision)


def _conv_stride2_fwd(x, w, pads, precision):
  return _forward(x, w, pads, precision), (x, w)


def _conv_stride2_bwd(pads, precision, residuals, g):
  x, w = residuals
  _, weight_vjp = jax.vjp(lambda w: _forward(x, w, pads, precision), w)
  return input_gradient(g, w, x.shape, pads, precision), weight_vjp(g)[0]


_conv_stride2.defvjp(_conv_stride2_fwd, _conv_stride2_bwd)


def input_gradient(g, w, x_shape, pads, precision=None):
  """∂/∂x of a stride-2 convolution, given its output gradient `g` (B, Gh, Gw, Cout).

  With x padded to xp (xp[j] = x[j - lo]), y[o] = Σ_k xp[2o + k] w[k], so for
  xp's positions of parity r, xp[2m + r] receives Σ_t g[m - t] w[2t + r]: a
  stride-1 correlation of g with the flipped taps w[r::2], padded T_r - 1
  before. The four (row, column) parities are interleaved back, and the
  padding cropped off.
  """
  b, h, wd, cin = x_shape
  (lo_h, hi_h), (lo_w, hi_w) = pads
  hp, wp = h + lo_h + hi_h, wd + lo_w + hi_w
  mh, mw = (hp + 1) // 2, (wp + 1) // 2
  rows = []
  for rh in (0, 1):
    cols = []
    for rw in (0, 1):
      taps = w[rh::2, rw::2]                     # (Th, Tw, Cin, Cout)
      th, tw = taps.shape[:2]
      if th == 0 or tw == 0:
        cols.append(jnp.zeros((b, mh, mw, cin), g.dtype))
        continue
      kernel = jnp.flip(taps, (0, 1)).transpose(0, 1, 3, 2)
      cols.append(lax.conv_general_dilated(
          g, kernel, (1, 1), ((th - 1, mh - g.shape[1]), (tw - 1, mw - g.shape[2])),
          dimension_numbers=_NHWC, precision=precision))
    rows.append(jnp.stack(cols, axis=3))          # (B, Mh, Mw, 2, Cin)
  dxp = jnp.stack(rows, axis=2).reshape(b, 2 * mh, 2 * mw, cin)
  return dxp[:, lo_h:lo_h + h, lo_w:lo_w + wd]
