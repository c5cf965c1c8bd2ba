"""What a benchmark figure was measured on, and where its JSON goes.

A timing means nothing without the machine, the library versions, the XLA
flags in force and how busy the (shared) machine was, so every result the
suite writes carries `describe()` and the load averages before and after.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
from typing import Callable

from salm_jax import atomic

RESULTS_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def default_results_dir() -> str:
  """benchmarks/results/cpu_<today> (the folder the suite's figures are committed in)."""
  return os.path.join(RESULTS_ROOT, f"cpu_{datetime.date.today().isoformat()}")


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def describe() -> dict:
  """CPU model, cores, library versions, XLA flags and torch threads (if torch is installed)."""
  info = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
          "platform": platform.platform(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
          "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
  for package in ("jax", "jaxlib", "flax", "numpy", "torch"):
    info[package] = _version(package)
  import jax
  info["jax_backend"] = jax.default_backend()
  info["jax_devices"] = jax.device_count()
  info["jax_device_kind"] = jax.devices()[0].device_kind  # the card, on a GPU
  info["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
  if info["torch"]:
    try:
      import torch
      info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # metadata without a working module
      info["torch"] = None
  return info


def load() -> list[float]:
  """1, 5 and 15 minute load averages (2.0 means both of 2 cores busy)."""
  return [round(v, 2) for v in os.getloadavg()]


def write(results_dir: str, name: str, payload: dict) -> str:
  """Writes {machine, **payload} to <results_dir>/<name>.json atomically; returns the path."""
  os.makedirs(results_dir, exist_ok=True)
  path = os.path.join(results_dir, f"{name}.json")
  atomic.write_json(path, {"machine": describe(), **payload})
  return path


def cli(doc: str, add_arguments: Callable, run: Callable[[argparse.Namespace], dict],
        name: str | Callable[[argparse.Namespace], str],
        child: Callable[[str, argparse.Namespace], dict] | None = None) -> None:
  """`python -m benchmarks.<part>`: the part's arguments, --results_dir, and its child mode.

  `name` (or `name(args)`) is the JSON's file name under --results_dir. With
  `child`, `--child=<what> --child_out=<file>` runs one measurement and
  writes its JSON instead (`child_process.run` starts the part that way).
  """
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  add_arguments(parser)
  parser.add_argument("--results_dir", default=None, help="also write the result's JSON here")
  if child:
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child_out", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if child and args.child:
    with open(args.child_out, "w", encoding="utf-8") as f:
      json.dump(child(args.child, args), f)
    return
  result = run(args)
  if args.results_dir:
    print(write(args.results_dir, name(args) if callable(name) else name, result))
