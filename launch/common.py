"""Flags every entry point shares: --config (ml_collections), --workdir, --overwrite.

The default config is found next to the installed `configs` package, so the
console scripts (`salm-protect`, ...) work from any folder, not only the repo root.
"""
import os

import jax
from absl import flags
from absl import logging
from ml_collections import config_flags

import configs
from launch import distributed

DEFAULT_CONFIG = os.path.join(os.path.dirname(configs.__file__), "salm.py") + ":synthetic"

CONFIG = config_flags.DEFINE_config_file(
    "config", DEFAULT_CONFIG, "Config file and argument, e.g. configs/salm.py:breastmnist. "
    "Override fields with --config.noise.mask_ratio=0.2.", lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Folder of the experiment's outputs.")
OVERWRITE = flags.DEFINE_bool("overwrite", False,
                              "Replace a finished stage's outputs instead of refusing.")
PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def setup() -> None:
  """Joins a multi-host run if there is one, caches compiled programs, logs at INFO.

  `jax.distributed` must start before anything touches a device. The
  persistent compilation cache makes every run after the first start in
  seconds instead of compiling again (set JAX_COMPILATION_CACHE_DIR to move it).
  """
  distributed.maybe_initialize()
  jax.config.update("jax_compilation_cache_dir", os.environ.get(
      "JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/salm_jax/jax")))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  logging.set_verbosity(logging.INFO)
  logging.use_absl_handler()
