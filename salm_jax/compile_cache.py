"""The persistent compilation cache every entry point and long script turns on.

XLA compilation is a large part of a short CPU run (a ResNet-50 or
DenseNet-121 victim compiles for minutes): with the cache on disk, a second
run of the same programs starts in seconds. JAX_COMPILATION_CACHE_DIR moves it.
"""
import os

import jax

DEFAULT_DIR = os.path.expanduser("~/.cache/salm_jax/jax")


def enable(min_compile_secs: float = 0.5) -> None:
  """Caches every program that took at least `min_compile_secs` to compile."""
  jax.config.update("jax_compilation_cache_dir",
                    os.environ.get("JAX_COMPILATION_CACHE_DIR", DEFAULT_DIR))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)
