"""Which knobs make the PGD round faster on XLA:CPU: every variant timed in one process.

The round is the one the shipped default runs (`bench_pgd.jax_round`:
class-wise δ, masks re-chosen at every step, top-k projection at the end,
`configs/salm.py`'s 10 steps of 1.6/255 unless --steps says otherwise).
XLA flags normally come from the XLA_FLAGS environment variable, read once
per process, so comparing them takes one process per flag, each seeing a
different load on a shared machine. Here every variant is compiled in this
one process (per-compilation `compiler_options` override the same
DebugOptions fields that XLA_FLAGS sets) and all are timed interleaved,
repeat by repeat, with PyTorch's loop (`torch_pgd.py`) as a fixed reference.

  python -m benchmarks.bench_levers                      # ResNet-18 w64, gray
  python -m benchmarks.bench_levers --case=small_cnn:16:1 --variants=default,unroll=1

Variants (name: what changes against `default`, the round compiled with XLA's defaults):
  library           the options the library compiles with (`salm_jax.xla_cpu.options()`)
  unroll=N          fori_loop unroll N (1 = a rolled loop; default: full unroll on CPU)
  batch=N           N images per call instead of --batch
  bf16              surrogate weights and activations in bfloat16 (δ and its update f32)
  precision=P       jax.default_matmul_precision(P) while tracing
  donate            δ's input buffer donated to the output
  xla:FLAG=VALUE    per-compilation XLA options, e.g. xla:xla_cpu_enable_fast_math=true;
                    several joined by '+', list values too (see `xla_options`)
"""
from __future__ import annotations

import argparse
import contextlib
import time

import jax
import jax.numpy as jnp

from benchmarks import bench_pgd, machine, timing
from salm_jax import xla_cpu
from salm_jax.noise.salm import pgd

YNN = "xla_cpu_experimental_ynn_fusion_type"
DEFAULT_VARIANTS = (
    "default", "library", "unroll=1", "unroll=5", "batch=64", "batch=256", "bf16", "precision=bfloat16",
    "donate", "xla:xla_cpu_enable_fast_math=true", "xla:xla_cpu_prefer_vector_width=512",
    f"xla:{YNN}=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION+LIBRARY_FUSION_TYPE_ELTWISE",
    f"xla:{YNN}=LIBRARY_FUSION_TYPE_DOT",
    f"xla:{YNN}=LIBRARY_FUSION_TYPE_DOT+xla_cpu_use_onednn=true",
    "xla:xla_cpu_multi_thread_eigen=false")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--case", default="resnet18:64:1", help="model:width:channels")
  parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
  parser.add_argument("--base", default="xla", choices=("xla", "library"),
                      help="what every variant starts from: XLA's default options, or the "
                           "library's (`salm_jax.xla_cpu.options()`)")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=0, help="steps per round (0: the config's)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no_torch", action="store_true")


def xla_options(text: str) -> dict:
  """'flag=v+LIST_A+LIST_B+other=w' -> {'flag': 'v,LIST_A,LIST_B', 'other': w} (typed).

  Commas separate variants, so list values (YNN fusion types) join with '+'
  and a '+' followed by a lower-case flag name starts the next option.
  """
  options, current = {}, None
  for part in text.split("+"):
    if "=" in part and part[:1].islower():
      current, value = part.split("=", 1)
      options[current] = value
    else:
      options[current] += "," + part
  for flag, value in options.items():
    if value.lower() in ("true", "false"):
      options[flag] = value.lower() == "true"
    elif value.lstrip("-").isdigit():
      options[flag] = int(value)
  return options


def _parse_variant(name: str, args) -> dict:
  """What a variant name changes: unroll, batch, dtype, donate, options, precision."""
  base = (xla_cpu.options() or {}) if args.base == "library" else {}
  out = dict(unroll=pgd.default_unroll(), batch=args.batch, dtype="float32", donate=False,
             options=base, precision=contextlib.nullcontext())
  key, _, value = name.partition("=")
  if key == "unroll":
    out["unroll"] = True if value == "true" else int(value)
  elif key == "batch":
    out["batch"] = int(value)
  elif name == "bf16":
    out["dtype"] = "bfloat16"
  elif key == "precision":
    out["precision"] = jax.default_matmul_precision(value)
  elif name == "donate":
    out["donate"] = True
  elif name.startswith("xla:"):
    out["options"] = {**base, **xla_options(name[4:])}
  elif name == "library":
    out["options"] = xla_cpu.options() or {}
  elif name != "default":
    raise ValueError(f"Unknown variant {name!r}; see the module docstring.")
  return out


def compile_variant(name: str, sur, state, rnd: bench_pgd.Round, args):
  """(compiled round, its inputs (x, y, zero δ, groups), batch size, compile seconds)."""
  v = _parse_variant(name, args)
  images, labels = bench_pgd.synthetic_batch(v["batch"], state_channels(args))
  delta, groups = bench_pgd.round_inputs(images, labels, "class")
  inputs = (jnp.asarray(images), jnp.asarray(labels), jnp.asarray(delta), jnp.asarray(groups))
  fn = bench_pgd.jax_round(sur, rnd, unroll=v["unroll"], dtype=v["dtype"], donate=v["donate"],
                           compiler_options=None)  # XLA's defaults; variants add their own
  with v["precision"]:
    start = time.perf_counter()
    compiled = fn.lower(state, *inputs).compile(compiler_options=v["options"])
    seconds = time.perf_counter() - start
  return compiled, inputs, v["batch"], seconds


def state_channels(args) -> int:
  return int(args.case.split(":")[2])


def _jax_contenders(sur, state, rnd, args) -> tuple[dict, dict]:
  """({variant: round closure}, {variant: row}), every variant compiled and run once."""
  contenders, rows = {}, {}
  for name in args.variants.split(","):
    compiled, (x, y, zero, groups), batch, compile_s = compile_variant(name, sur, state, rnd,
                                                                       args)
    box = {"delta": zero}

    def call(compiled=compiled, x=x, y=y, groups=groups, box=box):
      box["delta"], mask = compiled(state, x, y, box["delta"], groups)
      return mask
    jax.block_until_ready(call())
    contenders[name] = call
    rows[name] = {"variant": name, "batch": batch, "compile_s": round(compile_s, 2)}
    print(f"  compiled {name} ({compile_s:.1f} s)", flush=True)
  return contenders, rows


def run(args) -> dict:
  model, width, channels = args.case.split(":")
  rnd = bench_pgd.shipped_round("cpu", args.steps)
  sur, state = bench_pgd.make_surrogate(model, int(width), int(channels))
  contenders, rows = _jax_contenders(sur, state, rnd, args)
  if not args.no_torch and bench_pgd.has_torch():
    images, labels = bench_pgd.synthetic_batch(args.batch, int(channels))
    _, contenders["torch (reference)"], _ = bench_pgd.torch_contender(
        sur, state, model, int(width), int(channels), images, labels, rnd)
    rows["torch (reference)"] = {"variant": "torch (reference)", "batch": args.batch,
                                 "compile_s": 0.0}
  load_before = machine.load()
  times = timing.interleaved(contenders, args.repeats)
  for name, t in times.items():
    work = rows[name]["batch"] * rnd.steps
    rows[name].update(img_steps_s=round(work / t["best"], 1),
                      median_img_steps_s=round(work / t["median"], 1), seconds=t["all"])
  base = rows["default"]["img_steps_s"] if "default" in rows else float("nan")
  for row in rows.values():
    row["vs_default"] = round(row["img_steps_s"] / base, 3)
  result = {"benchmark": "levers", "case": args.case, "steps": rnd.steps,
            "step_size": rnd.step_size, "mask_ratio": rnd.ratio, "mode": "class",
            "rows": list(rows.values()), "load_before": load_before,
            "load_after": machine.load(), "args": vars(args)}
  print(table(result), flush=True)
  return result


def table(result: dict) -> str:
  lines = [f"PGD round levers: {result['case']}, class-wise, {result['steps']} steps, "
           f"interleaved; "
           f"load {result['load_before'][0]} -> {result['load_after'][0]}",
           "| variant | batch | compile s | img·steps/s (best) | (median) | × default |",
           "|---|---|---|---|---|---|"]
  for r in result["rows"]:
    lines.append(f"| {r['variant']} | {r['batch']} | {r['compile_s']:.1f} | "
                 f"{r['img_steps_s']:.0f} | {r['median_img_steps_s']:.0f} | "
                 f"{r['vs_default']:.2f} |")
  return "\n".join(lines)


def main() -> None:
  machine.cli(__doc__, add_arguments, run,
              lambda args: f"levers_{args.case.replace(':', '_')}")

if __name__ == "__main__":
  main()
