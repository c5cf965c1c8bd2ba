"""Peak host memory of a protect run per process, against N, image size and process count.

Each point runs `launch.protect` on the built-in phantom with the tiny SALM
config (`configs/salm.py:synthetic,tiny,size=<px>`, 2 rounds) in fresh
processes under `/usr/bin/time`, whose maximum resident set size is the
process's own peak. With P > 1 the P processes join one run through
jax.distributed on localhost (the `SALM_*` variables of launch/distributed.py).

Printed per point: each process's peak RSS, and the bytes per image pixel
above the smallest N's peak (the run's fixed cost: Python, JAX, compiled
programs), which counts how many bytes of images, noise and outputs a run
holds per pixel of data. `--repo` runs another checkout's code with the same
driver (for a before/after comparison).

  python -m benchmarks.bench_memory --counts=256,1024 --size=224 --processes=1,2 \\
      --json_out=benchmarks/results/memory.json
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from benchmarks import child_process, machine


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def protect_peak(repo: str, n: int, size: int, processes: int) -> dict:
  """One protect run in `processes` fresh processes: their peak RSS (MiB) and wall time."""
  port = str(_free_port())
  with tempfile.TemporaryDirectory() as workdir:
    cmd = ["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-m", "launch.protect",
           f"--config=configs/salm.py:synthetic,tiny,size={size}",
           f"--config.dataset.phantom.n_train={n}", "--config.tensorboard=False",
           f"--workdir={workdir}", "--progress=false"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=repo, JAX_PLATFORMS="cpu")
    start = time.perf_counter()
    procs = []
    for i in range(processes):
      extra = {} if processes == 1 else dict(
          SALM_DISTRIBUTED="1", SALM_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
          SALM_NUM_PROCESSES=str(processes), SALM_PROCESS_ID=str(i))
      procs.append(subprocess.Popen(cmd, cwd=repo, env={**env, **extra}, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
  if any(p.returncode for p in procs):
    raise RuntimeError("launch.protect failed:\n" + "\n".join(o[-3000:] for o in outputs))
  peaks = [int(o.rsplit("MAXRSS", 1)[1].split()[0]) / 1024 for o in outputs]
  return {"n": n, "size": size, "processes": processes, "wall_s": round(wall, 1),
          "peak_rss_mib": [round(p, 1) for p in peaks]}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--counts", default="256,1024", help="training images N")
  parser.add_argument("--size", type=int, default=224, help="image side in pixels")
  parser.add_argument("--processes", default="1,2", help="process counts P")
  parser.add_argument("--repo", default=child_process.REPO_ROOT, help="checkout to measure")
  parser.add_argument("--json_out", default=None)
  args = parser.parse_args()
  counts = [int(c) for c in args.counts.split(",")]
  rows = []
  for p in (int(x) for x in args.processes.split(",")):
    for n in counts:
      row = protect_peak(os.path.abspath(args.repo), n, args.size, p)
      if n != counts[0]:  # bytes per image pixel above the smallest N's peak
        base = next(r for r in rows if r["processes"] == p and r["n"] == counts[0])
        extra = (max(row["peak_rss_mib"]) - max(base["peak_rss_mib"])) * 2**20
        row["bytes_per_pixel"] = round(extra / ((n - counts[0]) * args.size ** 2), 2)
      rows.append(row)
      print(json.dumps(row), flush=True)
  if args.json_out:
    with open(args.json_out, "w", encoding="utf-8") as f:
      json.dump({"machine": machine.describe(), "repo": args.repo, "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
