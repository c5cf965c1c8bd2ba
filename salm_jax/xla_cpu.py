"""XLA:CPU compiler options for the convolution-heavy programs: PGD rounds, surrogate and victim steps.

Why: XLA:CPU (jax 0.10) runs convolutions as YNNPACK library fusions by
default. On the project's 2-core AMD EPYC (Zen 4) machine, idle, handing only
dot products to YNNPACK (`xla_cpu_experimental_ynn_fusion_type =
LIBRARY_FUSION_TYPE_DOT`), so that convolutions take XLA's own path, made one
masked PGD round 1.22-1.33× faster for every surrogate timed (ResNet-18 at
widths 64 and 16, gray and RGB, and the small CNN; `benchmarks/bench_levers.py`,
docs/benchmarks.md). On a heavily loaded machine the same switch measured
0.97-1.05×: load hid it. Other backends get no options.

The options are per compilation (`jax.jit(..., compiler_options=...)`), not
XLA_FLAGS, so importing the library changes nothing for the user's own jits.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from absl import logging
import jax

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


def options(extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
  """`CPU_OPTIONS` (plus `extra`) on the CPU backend; `extra` alone elsewhere."""
  base = CPU_OPTIONS if jax.default_backend() == "cpu" and _cpu_options_known() else {}
  merged = {**base, **(extra or {})}
  return merged or None


def jit(fn: Callable, extra: dict[str, Any] | None = None, **kwargs) -> Callable:
  """`jax.jit(fn, **kwargs)` compiled with `options(extra)`."""
  return jax.jit(fn, compiler_options=options(extra), **kwargs)


@functools.cache
def _cpu_options_known() -> bool:
  """Whether this XLA accepts `CPU_OPTIONS` (an experimental flag may be renamed or removed)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=CPU_OPTIONS).lower(1.0).compile()
    return True
  except Exception as e:  # pylint: disable=broad-except  # XLA reports unknown options variously
    logging.warning("This XLA does not take %s (%s); compiling with its defaults.",
                    CPU_OPTIONS, str(e).splitlines()[0][:200])
    return False
