"""Shared test setup: 8 fake CPU devices for sharding tests, and the shared MedMNIST files.

XLA_FLAGS must be set before JAX initializes its backends, so it is set here,
at import time of the test session. Computations that are not sharded run on
device 0 as usual.
"""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Share compiled programs between the test process and the entry points it
# starts as subprocesses (they compile the same functions).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_MEDMNIST = REPO_ROOT.parent / "shared" / "data" / "medmnist"


@pytest.fixture(scope="session")
def medmnist_dir() -> pathlib.Path:
  """The folder with the real MedMNIST files (`../shared/data/medmnist`)."""
  if not (SHARED_MEDMNIST / "breastmnist.npz").exists():
    pytest.skip(f"real MedMNIST files not found in {SHARED_MEDMNIST}")
  return SHARED_MEDMNIST
