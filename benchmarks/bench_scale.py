"""How a generator round's time and memory grow with the number of images.

For N in `--sizes` PneumoniaMNIST training images, a fresh process runs the
generator with the noise and surrogate settings `configs/salm.py:pneumoniamnist`
ships (class-wise SALM, masks re-chosen at every step, top-k projection
after each round, width-16 ResNet-18 surrogate; as bench_generate) for two
rounds without a persistent compilation cache, so that

  * round 1 = compilation + one round, round 2 = one steady-state round,
    and compile ≈ round 1 - round 2 is reported apart;
  * peak RSS is this N's own; `tracemalloc` also records the peak of host
    (NumPy) allocations during the run, in units of one N x 28 x 28 x 1
    float32 array (the size of the images, and of the per-image noise
    `generate` returns), which shows how many such copies are alive at once.

Time per round and memory should grow linearly in N (a line through the
points; the fit and each point's residual are printed).

  python -m benchmarks.bench_scale --data_dir=/work/shared/data/medmnist --sizes=500,1000
"""
from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from benchmarks import child_process, machine

DEFAULT_DATA_DIR = os.path.join(child_process.REPO_ROOT, "..", "shared", "data", "medmnist")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR, help="folder of pneumoniamnist.npz")
  parser.add_argument("--dataset", default="pneumoniamnist")
  parser.add_argument("--sizes", default="500,1000,2000,4000")
  parser.add_argument("--surrogate", default="", help="model:width override (default: the config's)")


def child(n: int, args) -> dict:
  """Two generator rounds on the first n training images, in this (fresh) process."""
  from configs import salm
  from salm_jax.data import dataset as dataset_lib
  from salm_jax.data import load_dataset
  from salm_jax.noise.salm import generator
  config = salm.get_config(args.dataset)
  config.noise.update(max_rounds=2, min_rounds=2)
  if args.surrogate:
    config.surrogate.model, width = args.surrogate.split(":")
    config.surrogate.width = int(width)
  ds = load_dataset(args.dataset, size=28, data_dir=args.data_dir, download=False)
  if n > len(ds.train):
    raise ValueError(f"{args.dataset} has {len(ds.train)} training images, asked for {n}.")
  images = dataset_lib.as_float(ds.train.images[:n])
  labels = np.asarray(ds.train.labels[:n])
  rss_before = child_process.peak_rss_mib()
  tracemalloc.start()
  start = time.perf_counter()
  result = generator.generate(config, images, labels, task=ds.task,
                              num_classes=ds.num_classes, progress=False)
  wall = time.perf_counter() - start
  _, traced_peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  first, second = (h["seconds"] for h in result.history)
  return {"n": n, "wall_s": round(wall, 2), "round1_s": round(first, 2),
          "round2_s": round(second, 2), "compile_s": round(first - second, 2),
          "peak_rss_mib": child_process.peak_rss_mib(), "rss_before_mib": rss_before,
          "host_peak_mib": round(traced_peak / 2**20, 2),
          "noise_mib": round(images.nbytes / 2**20, 3),
          "host_peak_in_noise_sizes": round(traced_peak / images.nbytes, 2)}


def linear_fit(xs, ys) -> dict:
  """Least-squares y = a + b·x and the largest residual relative to y."""
  b, a = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
  worst = max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys))
  return {"intercept": round(float(a), 4), "slope": float(b), "max_rel_residual": round(worst, 3)}


def table(rows: list[dict], fits: dict) -> str:
  lines = ["| N | round 1 s (compile + run) | round 2 s (steady) | compile s | ms/image/round | "
           "peak RSS MiB | RSS growth MiB | host peak MiB (× noise) | load |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['n']} | {r['round1_s']:.1f} | {r['round2_s']:.2f} | {r['compile_s']:.1f} | "
                 f"{1e3 * r['round2_s'] / r['n']:.2f} | {r['peak_rss_mib']:.0f} | "
                 f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f} | {r['host_peak_mib']:.1f} "
                 f"({r['host_peak_in_noise_sizes']:.1f}×) | {r['load_after'][0]} |")
  lines.append(f"steady round time ≈ {fits['round2_s']['intercept']:.2f} s + "
               f"{1e3 * fits['round2_s']['slope']:.2f} ms × N (largest residual "
               f"{100 * fits['round2_s']['max_rel_residual']:.0f}%); peak RSS ≈ "
               f"{fits['peak_rss_mib']['intercept']:.0f} MiB + "
               f"{1e3 * fits['peak_rss_mib']['slope']:.1f} KiB × N")
  return "\n".join(lines)


def run(args) -> dict:
  rows = []
  for n in (int(s) for s in args.sizes.split(",")):
    rows.append(child_process.run("benchmarks.bench_scale", str(n),
                                  [f"--data_dir={args.data_dir}", f"--dataset={args.dataset}",
                                   f"--surrogate={args.surrogate}"],
                                  {"JAX_COMPILATION_CACHE_DIR": "", "JAX_ENABLE_COMPILATION_CACHE":
                                   "false"}))
    print(f"  N={n}: round 2 {rows[-1]['round2_s']:.2f} s, peak RSS "
          f"{rows[-1]['peak_rss_mib']:.0f} MiB", flush=True)
  ns = [r["n"] for r in rows]
  fits = {key: linear_fit(ns, [r[key] for r in rows]) for key in ("round2_s", "peak_rss_mib")} \
      if len(rows) > 1 else {}
  result = {"benchmark": "scale", "dataset": args.dataset, "rows": rows, "fits": fits,
            "args": {k: v for k, v in vars(args).items() if not k.startswith("child")}}
  if fits:
    print(table(rows, fits), flush=True)
  return result


def main() -> None:
  machine.cli(__doc__, add_arguments, run, "scale",
              child=lambda n, args: child(int(n), args))

if __name__ == "__main__":
  main()
