"""Fair timings on a shared machine: competitors interleaved in one process.

Other jobs come and go on the shared cores, so timing JAX for a minute and
then PyTorch for a minute compares two different machines. `interleaved`
alternates the contenders repeat by repeat (and flips the order every
repeat), and reports the best and the median of each: the best is the
figure least disturbed by other load, the median shows how noisy it was.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import jax


def seconds(fn: Callable[[], object]) -> float:
  """Wall time of one call, waiting for JAX's asynchronous results."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
  """{name: {'best': s, 'median': s, 'all': [s, ...]}} over `repeats` alternating calls each."""
  times = {name: [] for name in contenders}
  names = list(contenders)
  for r in range(repeats):
    for name in (names if r % 2 == 0 else names[::-1]):
      times[name].append(seconds(contenders[name]))
  return {name: {"best": min(t), "median": statistics.median(t), "all": [round(s, 4) for s in t]}
          for name, t in times.items()}
