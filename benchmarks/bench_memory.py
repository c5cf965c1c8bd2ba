"""Peak host memory of a protect run per process, against N, image size and process count.

Each point runs `launch.protect` with the tiny SALM config
(`configs/salm.py:synthetic,tiny,size=<px>`, 2 rounds) in fresh processes
under `/usr/bin/time`, whose maximum resident set size is the process's own
peak. The data is the built-in phantom, or with `--source=npz` the phantom
written once to a MedMNIST-layout npz that the run reads as a user's file
(each process of a multi-process run then reads only its own rows). With
P > 1 the P processes join one run through jax.distributed on localhost (the
`SALM_*` variables of launch/distributed.py).

Printed per point: each process's peak RSS, and the bytes per image pixel
above the smallest N's peak (the run's fixed cost: Python, JAX, compiled
programs), which counts how many bytes of images, noise and outputs a run
holds per pixel of data. `--repo` runs another checkout's code with the same
driver (for a before/after comparison).

  python -m benchmarks.bench_memory --counts=1024,4096 --size=224 --processes=1,2,4 \\
      --source=npz --json_out=benchmarks/results/memory.json
  python -m benchmarks.bench_memory --counts=256 --size=224 --processes= --source=npz \\
      --compare=1x1,1x2,2x1,2x2,4x1,1x4,1x8/1x4,2x4,4x4/1x8,2x8/1x1,1x1@1,1x2@1 \\
      --json_out=benchmarks/results/equality.json

`--compare` compares each group's layouts with its first, to tell whether the
written files depend on the layout or on XLA:CPU's threads per process
(`threads`; `@C` runs each process on C cores).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import child_process, machine


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def write_npz(path: str, n: int, size: int) -> None:
  """The tiny config's phantom with N training images, as a MedMNIST-layout npz."""
  from salm_jax import data  # pylint: disable=g-import-not-at-top
  from salm_jax.data import npz_io  # pylint: disable=g-import-not-at-top
  phantom = data.make_phantom(size=size, n_train=n, n_val=32, n_test=32, lesion_contrast=60.0)
  npz_io.write_npz(path, phantom.splits)


def protect_peak(repo: str, n: int, size: int, processes: int, source: str, *,
                 devices: int = 1, cores: int | None = None, keep: str | None = None) -> dict:
  """One protect run in `processes` fresh processes of `devices` CPU devices each: their peak
  RSS (MiB) and wall time. `cores`: each process runs on cores 0..cores-1 only (taskset);
  `keep`: a folder to copy the protected files to."""
  port = str(_free_port())
  with tempfile.TemporaryDirectory() as tmp:
    workdir = os.path.join(tmp, "run")
    data = [f"--config.dataset.phantom.n_train={n}"]
    if source == "npz":
      write_npz(os.path.join(tmp, "phantom.npz"), n, size)
      data = [f"--config.dataset.name={os.path.join(tmp, 'phantom.npz')}"]
    cmd = ["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-m", "launch.protect",
           f"--config=configs/salm.py:synthetic,tiny,size={size}", *data,
           "--config.tensorboard=False", f"--workdir={workdir}", "--progress=false"]
    if cores:
      cmd = ["taskset", "-c", f"0-{cores - 1}", *cmd]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=repo, JAX_PLATFORMS="cpu")
    if devices > 1:
      env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
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
    if keep and not any(p.returncode for p in procs):
      shutil.copytree(os.path.join(workdir, "protected"), keep, dirs_exist_ok=True)
  if any(p.returncode for p in procs):
    raise RuntimeError("launch.protect failed:\n" + "\n".join(o[-3000:] for o in outputs))
  peaks = [int(o.rsplit("MAXRSS", 1)[1].split()[0]) / 1024 for o in outputs]
  return {"n": n, "size": size, "processes": processes, "devices_per_process": devices,
          "source": source,
          "wall_s": round(wall, 1),
          "peak_rss_mib": [round(p, 1) for p in peaks]}


def differences(a: str, b: str) -> dict:
  """How many values of the protected npz and noise.npz differ between two output folders
  (mask bits unpacked: one value per pixel), per member, and by how many levels at most in
  the images and the noise."""
  out = {"values": 0, "differ": 0, "max_levels": 0, "members": {}}
  for name in sorted(os.listdir(a)):
    if not name.endswith(".npz"):
      continue
    with np.load(os.path.join(a, name)) as x, np.load(os.path.join(b, name)) as y:
      for k in x.files:
        u, v = x[k], y[k]
        if k.endswith("_mask_bits"):
          u, v = np.unpackbits(u), np.unpackbits(v)
        d = np.abs(u.astype(np.int64) - v.astype(np.int64))
        out["values"] += d.size
        out["differ"] += int((d > 0).sum())
        out["members"][f"{name}:{k}"] = int((d > 0).sum())
        if k.endswith(("_images", "_noise")):
          out["max_levels"] = max(out["max_levels"], int(d.max(initial=0)))
  return out


def threads(devices: int, cores: int | None) -> int:
  """XLA:CPU's intra-op threads in a process: one per core it may run on, at least one per
  local device. Convolutions and reductions split their work by it, so it sets the last
  bits of the result."""
  return max(cores or len(os.sched_getaffinity(0)), devices)


def compare(repo: str, n: int, size: int, groups: list[list[tuple[int, int, int | None]]],
            source: str) -> list[dict]:
  """The files of each (processes, devices per process, cores) layout against the first
  layout of its group: how many written values differ, and by how much at most."""
  out = []
  with tempfile.TemporaryDirectory() as tmp:
    for g, group in enumerate(groups):
      folders, peaks = [], []
      for p, d, c in group:
        folders.append(os.path.join(tmp, f"{g}_{p}x{d}@{c}"))
        peaks.append(protect_peak(repo, n, size, p, source, devices=d, cores=c,
                                  keep=folders[-1])["peak_rss_mib"])
      (p0, d0, c0), base = group[0], folders[0]
      for (p, d, c), folder, peak in zip(group[1:], folders[1:], peaks[1:]):
        out.append({"n": n, "size": size, "processes": p, "devices_per_process": d,
                    "cores_per_process": c, "threads_per_process": threads(d, c),
                    "peak_rss_mib": peak,
                    "against": {"processes": p0, "devices_per_process": d0,
                                "cores_per_process": c0, "threads_per_process": threads(d0, c0),
                                "peak_rss_mib": peaks[0]},
                    **differences(folder, base)})
        print(json.dumps(out[-1]), flush=True)
  return out


def parse_layouts(spec: str) -> list[list[tuple[int, int, int | None]]]:
  """'1x1,2x1/1x4,2x4/1x1,1x1@1' -> groups of (processes, devices, cores or None)."""
  groups = []
  for group in spec.split("/"):
    layouts = []
    for item in group.split(","):
      layout, _, cores = item.partition("@")
      p, d = (int(v) for v in layout.split("x"))
      layouts.append((p, d, int(cores) if cores else None))
    if len(layouts) < 2:
      raise ValueError(f"--compare group {group!r} needs a reference and a layout to compare")
    groups.append(layouts)
  return groups


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--counts", default="256,1024", help="training images N")
  parser.add_argument("--size", type=int, default=224, help="image side in pixels")
  parser.add_argument("--processes", default="1,2", help="process counts P")
  parser.add_argument("--source", default="phantom", choices=("phantom", "npz"),
                      help="the built-in phantom, or the phantom read from an npz")
  parser.add_argument("--repo", default=child_process.REPO_ROOT, help="checkout to measure")
  parser.add_argument("--compare", default="",
                      help="groups of PxD[@C] layouts (P processes of D devices, each on C "
                      "cores), '/' between groups; each layout's files are compared with "
                      "its group's first at the largest N, e.g. 1x1,2x1,4x1/1x4,2x4")
  parser.add_argument("--json_out", default=None)
  args = parser.parse_args()
  counts = [int(c) for c in args.counts.split(",")]
  rows = []
  for p in (int(x) for x in args.processes.split(",") if x):
    for n in counts:
      row = protect_peak(os.path.abspath(args.repo), n, args.size, p, args.source)
      if n != counts[0]:  # bytes per image pixel above the smallest N's peak
        base = next(r for r in rows if r["processes"] == p and r["n"] == counts[0])
        extra = (max(row["peak_rss_mib"]) - max(base["peak_rss_mib"])) * 2**20
        row["bytes_per_pixel"] = round(extra / ((n - counts[0]) * args.size ** 2), 2)
      rows.append(row)
      print(json.dumps(row), flush=True)
  equality = None
  if args.compare:
    equality = compare(os.path.abspath(args.repo), counts[-1], args.size,
                       parse_layouts(args.compare), args.source)
  if args.json_out:
    with open(args.json_out, "w", encoding="utf-8") as f:
      json.dump({"machine": machine.describe(), "repo": args.repo, "rows": rows,
                 "equality": equality}, f, indent=1)


if __name__ == "__main__":
  main()
