"""Convolution layout on XLA:CPU: NHWC (what the models use) against NCHW, per ResNet-18 layer.

Why: issue 10 lists "the layout of the convolutions (NHWC against what
XLA:CPU prefers)" among the levers for the PGD round. The models are written
NHWC (Flax's convention). A PGD step's work per convolution is one forward
pass and one input gradient, so this times exactly that pair (`jax.vjp` in
x), for ResNet-18's stride-1 3×3 layers at 28 px (batch 128, the library's
XLA:CPU options), written once NHWC/HWIO and once NCHW/OIHW with the same
numbers, interleaved. Both give the same gradient (`tests/test_benchmarks.py`).

  python -m benchmarks.conv_layout [--results_dir=D]     # D/conv_layout.json
"""
from __future__ import annotations

import argparse

import jax
from jax import lax

from benchmarks import machine, timing
from salm_jax import xla_cpu

LAYOUTS = {"NHWC": ("NHWC", "HWIO", "NHWC"), "NCHW": ("NCHW", "OIHW", "NCHW")}
# (input px, channels): ResNet-18's stride-1 3×3 convolutions at 28 px, one per stage.
LAYERS = ((28, 64), (14, 128), (7, 256), (4, 512))


def forward_and_input_gradient(x, w, g, layout: str):
  """One convolution's share of a PGD step: y = conv(x, w) and g·∂y/∂x."""
  conv = lambda x: lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                            dimension_numbers=LAYOUTS[layout])
  y, vjp = jax.vjp(conv, x)
  return y, vjp(g)[0]


def operands(batch: int, size: int, channels: int, layout: str):
  """(x, w, g) with the same numbers in either layout."""
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (batch, size, size, channels))
  w = jax.random.normal(kw, (3, 3, channels, channels)) * 0.05
  g = jax.random.normal(kg, (batch, size, size, channels))
  if layout == "NCHW":
    return x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), g.transpose(0, 3, 1, 2)
  return x, w, g


def measure(batch: int, layer: tuple, repeats: int) -> dict:
  """Milliseconds (best of `repeats`) of forward + input gradient in each layout."""
  size, channels = layer
  calls = {}
  for layout in LAYOUTS:
    args = operands(batch, size, channels, layout)
    fn = xla_cpu.jit(lambda x, w, g, layout=layout: forward_and_input_gradient(x, w, g, layout))
    jax.block_until_ready(fn(*args))
    calls[layout] = lambda fn=fn, args=args: fn(*args)
  times = timing.interleaved(calls, repeats)
  ms = {layout: round(1e3 * t["best"], 2) for layout, t in times.items()}
  return {"px": size, "channels": channels, **ms, "nchw_over_nhwc": round(ms["NCHW"] / ms["NHWC"], 3)}


def run(args) -> dict:
  """Every layer of `LAYERS`, its table row printed as it is measured."""
  print("| layer (px, channels, 3×3, stride 1) | NHWC ms | NCHW ms | NCHW / NHWC |")
  print("|---|---|---|---|")
  rows, load_before = [], machine.load()
  for layer in LAYERS:
    row = measure(args.batch, layer, args.repeats)
    rows.append(row)
    print(f"| {row['px']}, {row['channels']} | {row['NHWC']} | {row['NCHW']} | "
          f"{row['nchw_over_nhwc']} |", flush=True)
  return {"benchmark": "conv_layout", "batch": args.batch, "repeats": args.repeats, "rows": rows,
          "load_before": load_before, "load_after": machine.load()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=5)


if __name__ == "__main__":
  machine.cli(__doc__, add_arguments, run, "conv_layout")
