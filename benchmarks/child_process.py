"""Runs one measurement in a fresh Python process and reads back its JSON.

Peak RSS is a per-process high-water mark, and compilation caches live per
process, so measurements of memory, of cold starts and of different
implementations each get their own interpreter. The child is the same
benchmark module run with `--child=<what> --child_out=<file>`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from benchmarks import machine

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(module: str, what: str, argv: list[str], env: dict[str, str] | None = None) -> dict:
  """`python -m <module> --child=<what> ...argv` -> its JSON, plus the load before and after."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "child.json")
    cmd = [sys.executable, "-m", module, f"--child={what}", f"--child_out={out}", *argv]
    path = os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    load_before = machine.load()
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode:
      raise RuntimeError(f"{module} --child={what} failed:\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-4000:]}")
    with open(out, encoding="utf-8") as f:
      return {**json.load(f), "load_before": load_before, "load_after": machine.load()}


def peak_rss_mib() -> float:
  """This process's peak resident memory so far, in MiB.

  Read from /proc/self/status's VmHWM, the high-water mark of this program's
  own address space. `getrusage`'s ru_maxrss is not: Linux carries it
  across fork + exec, so a child started by a parent that already held 2 GiB
  reported the parent's 2 GiB as its own peak.
  """
  try:
    with open("/proc/self/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return round(int(line.split()[1]) / 1024, 1)  # kB
  except OSError:
    pass
  import resource
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
