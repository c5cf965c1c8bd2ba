"""The input gradient of a stride-2 convolution: XLA's lowering vs a phase split, per layer.

XLA lowers ∂/∂x of a stride-2 convolution to a convolution over the output
gradient dilated with zeros (`lhs_dilate=2x2` in the HLO). This times, for
ResNet-18's stride-2 layers at 28 px (batch 128, the library's XLA:CPU
options), the forward pass, that gradient as XLA computes it, and the same
gradient split by input parity into four dense stride-1 convolutions
(`phase_split_input_gradient`). The split was tried as a `jax.custom_vjp` in
the models (commit d62a636) and not kept: it gains at 28 and 14 px, loses at
7 px, about 3% of a ResNet-18 step (docs/benchmarks.md).

  python -m benchmarks.stride2_input_gradient
"""
from __future__ import annotations

import argparse

import jax
from jax import lax
import jax.numpy as jnp

from benchmarks import timing
from salm_jax import xla_cpu

NHWC = ("NHWC", "HWIO", "NHWC")
# (input px, in channels, out channels, kernel): ResNet-18's stride-2 convolutions at 28 px.
LAYERS = ((28, 64, 128, 3), (14, 128, 256, 3), (7, 256, 512, 3), (28, 64, 128, 1))


def forward(x, w, pads):
  return lax.conv_general_dilated(x, w, (2, 2), pads, dimension_numbers=NHWC)


def xla_input_gradient(x, w, g, pads):
  return jax.vjp(lambda x: forward(x, w, pads), x)[1](g)[0]


def phase_split_input_gradient(g, w, x_shape, pads):
  """∂/∂x of a stride-2 convolution from its output gradient `g`, without dilation zeros.

  With x padded to xp (xp[j] = x[j - lo]), y[o] = Σ_k xp[2o + k] w[k], so
  xp's positions of parity r receive xp[2m + r] = Σ_t g[m - t] w[2t + r]: a
  stride-1 correlation of g with the flipped taps w[r::2], padded T_r - 1
  before. The four (row, column) parities are interleaved back and the
  padding cropped off.
  """
  b, h, wd, cin = x_shape
  (lo_h, hi_h), (lo_w, hi_w) = pads
  mh, mw = (h + lo_h + hi_h + 1) // 2, (wd + lo_w + hi_w + 1) // 2
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
          dimension_numbers=NHWC))
    rows.append(jnp.stack(cols, axis=3))          # (B, Mh, Mw, 2, Cin)
  dxp = jnp.stack(rows, axis=2).reshape(b, 2 * mh, 2 * mw, cin)
  return dxp[:, lo_h:lo_h + h, lo_w:lo_w + wd]


def measure(batch: int, layer: tuple, repeats: int) -> dict:
  """Milliseconds (best of `repeats`) of the forward pass and of both input gradients."""
  size, cin, cout, k = layer
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (batch, size, size, cin))
  w = jax.random.normal(kw, (k, k, cin, cout)) * 0.05
  pads = ((k // 2, k // 2),) * 2
  g = jax.random.normal(kg, forward(x, w, pads).shape)
  fns = {"forward": xla_cpu.jit(lambda x, w, g: forward(x, w, pads)),
         "xla": xla_cpu.jit(lambda x, w, g: xla_input_gradient(x, w, g, pads)),
         "phase_split": xla_cpu.jit(lambda x, w, g: phase_split_input_gradient(
             g, w, x.shape, pads))}
  for fn in fns.values():
    jax.block_until_ready(fn(x, w, g))
  times = timing.interleaved({n: (lambda f=f: f(x, w, g)) for n, f in fns.items()}, repeats)
  return {n: round(1e3 * t["best"], 1) for n, t in times.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print("| layer (px, in → out, kernel) | forward ms | ∂/∂x, XLA ms | ∂/∂x, phase split ms |")
  print("|---|---|---|---|")
  for layer in LAYERS:
    ms = measure(args.batch, layer, args.repeats)
    print(f"| {layer[0]}, {layer[1]} → {layer[2]}, {layer[3]}×{layer[3]} | {ms['forward']} | "
          f"{ms['xla']} | {ms['phase_split']} |", flush=True)


if __name__ == "__main__":
  main()
