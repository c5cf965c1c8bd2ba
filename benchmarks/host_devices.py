"""Splitting the PGD round over several XLA:CPU devices on one host: does it beat one device?

Why: two small-CNN victims trained side by side in threads take 4.9 s against
9.3 s one after the other (`benchmarks/parallel_victims.py`), so XLA:CPU's
threads inside one small program leave cores idle. The generator already
shards every PGD batch over a 'data' mesh (`salm_jax.sharding`); with
`--xla_force_host_platform_device_count=N` the host shows N devices and each
gets 1/N of the batch. This times one masked PGD round (batch 128, the
library's options) with 1 and with N host devices, each count in its own
process (the flag is read once per process), alternating the processes
repeat by repeat.

  python -m benchmarks.host_devices [--case=resnet18:16:1] [--counts=1,2] [--results_dir=D]

With --results_dir the result goes to D/host_devices_<model>_<width>_<channels>.json.
"""
from __future__ import annotations

import argparse
import time

from benchmarks import child_process, machine, timing

MODULE = "benchmarks.host_devices"


def child(_: str, args) -> dict:
  """In the child: the round sharded over every host device, best of 3 calls after a warm-up."""
  import jax
  import numpy as np
  from benchmarks import bench_pgd
  from salm_jax import sharding
  model, width, channels = args.case.split(":")
  sur, state = bench_pgd.make_surrogate(model, int(width), int(channels))
  images, labels = bench_pgd.synthetic_batch(args.batch, int(channels))
  mesh = sharding.data_mesh()
  x, y = sharding.shard_batch(mesh, images), sharding.shard_batch(mesh, labels)
  box = {"delta": sharding.shard_batch(mesh, np.zeros_like(images))}
  state = sharding.replicate(mesh, state)
  fn = bench_pgd.jax_round(sur, steps=args.steps, unroll=True)
  start = time.perf_counter()
  compiled = fn.lower(state, x, y, box["delta"]).compile()
  compile_s = time.perf_counter() - start

  def call():
    box["delta"], _ = compiled(state, x, y, box["delta"])
    return box["delta"]
  times = [timing.seconds(call) for _ in range(4)][1:]  # the first call warms up
  return {"devices": jax.device_count(), "compile_s": round(compile_s, 2),
          "img_steps_s": round(args.batch * args.steps / min(times), 1)}


def run(args) -> dict:
  """{count: best img·steps/s over the repeats}, the counts' processes alternated; printed."""
  counts = [int(c) for c in args.counts.split(",")]
  runs = {c: [] for c in counts}
  argv = [f"--case={args.case}", f"--batch={args.batch}", f"--steps={args.steps}"]
  for r in range(args.repeats):
    for c in (counts if r % 2 == 0 else counts[::-1]):
      flags = f"--xla_force_host_platform_device_count={c}"
      runs[c].append(child_process.run(MODULE, "round", argv, env={"XLA_FLAGS": flags}))
  rows = [{"devices": c, "img_steps_s": max(r["img_steps_s"] for r in rs),
           "compile_s": min(r["compile_s"] for r in rs), "runs": rs} for c, rs in runs.items()]
  for row in rows:
    row["vs_one"] = round(row["img_steps_s"] / rows[0]["img_steps_s"], 3)
  print(f"PGD round, {args.case}, batch {args.batch}, {args.steps} steps, best of "
        f"{args.repeats} processes per count")
  print("| host devices | compile s | img·steps/s | × one device |\n|---|---|---|---|")
  for row in rows:
    print(f"| {row['devices']} | {row['compile_s']} | {row['img_steps_s']} | {row['vs_one']} |")
  return {"benchmark": "host_devices", "case": args.case, "batch": args.batch,
          "steps": args.steps, "rows": rows}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--case", default="resnet18:16:1", help="model:width:channels")
  parser.add_argument("--counts", default="1,2", help="host device counts; the first is the base")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--repeats", type=int, default=2)


if __name__ == "__main__":
  machine.cli(__doc__, add_arguments, run,
              lambda args: "host_devices_" + args.case.replace(":", "_"), child=child)
