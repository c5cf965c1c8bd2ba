"""Two processes under jax.distributed (localhost CPU, gloo) give one process's noise, each
process holding only its own rows."""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from salm_jax import sharding, tasks
from salm_jax.noise.salm import generator
from tests.conftest import REPO_ROOT
from tests.helpers import tiny

WORKER = REPO_ROOT / "tests" / "helpers" / "multiprocess_worker.py"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["sample", "class"])  # sample: δ row-sharded across processes
def test_two_processes_equal_one(tmp_path, mode):
  out = tmp_path / "two.npz"
  port = str(_free_port())
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(i), "2", port, str(out), mode],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = [p.communicate(timeout=300)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n".join(l[-3000:] for l in logs)
  parts = [np.load(f"{out}.{i}.npz") for i in range(2)]
  rows = np.concatenate([p["rows"] for p in parts])
  assert sorted(rows) == list(range(len(tiny.blobs()[0])))  # each row in exactly one process
  assert all(0 < len(p["rows"]) < len(rows) for p in parts)  # and each holds only its own
  two = {k: np.concatenate([p[k] for p in parts])[np.argsort(rows)] for k in ("delta", "masks")}
  images, labels = tiny.blobs()
  one = generator.generate(tiny.config(stop_accuracy=1.01, max_rounds=2, mode=mode), images,
                           labels,
                           task=tasks.BINARY, num_classes=2, progress=False,
                           mesh=sharding.data_mesh(jax.devices()[:2]))
  np.testing.assert_array_equal(two["delta"], one.delta)
  np.testing.assert_array_equal(two["masks"], one.masks)


PROTECT_WORKER = REPO_ROOT / "tests" / "helpers" / "protect_worker.py"


def _protect(workdir, npz, processes: int, local_devices: int, mode: str):
  port = str(_free_port())
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  procs = [subprocess.Popen([sys.executable, str(PROTECT_WORKER), str(i), str(processes), port,
                             str(workdir), str(npz), str(local_devices), mode],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(processes)]
  logs = [p.communicate(timeout=300)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), "\n".join(l[-3000:] for l in logs)


@pytest.mark.parametrize("mode", ["class", "sample"])
def test_two_processes_write_the_file_of_one(tmp_path, mode):
  """Each process reads its own rows of the npz; process 0 gathers the protected rows in
  windows and writes the same npz, noise and statistics as one process with two devices."""
  from salm_jax import data
  from salm_jax.data import npz_io
  phantom = data.make_phantom(size=28, n_train=64, n_val=16, n_test=16, seed=3)
  npz = tmp_path / "tiny.npz"
  npz_io.write_npz(str(npz), phantom.splits)
  _protect(tmp_path / "two", npz, 2, 1, mode)
  _protect(tmp_path / "one", npz, 1, 2, mode)
  for name in ("tiny.npz", "noise.npz"):
    two, one = (np.load(tmp_path / w / "protected" / name) for w in ("two", "one"))
    assert sorted(two.files) == sorted(one.files)
    for k in one.files:
      np.testing.assert_array_equal(two[k], one[k], err_msg=f"{name}:{k}")
  manifests = [json.loads((tmp_path / w / "protected" / "manifest.json").read_text())
               for w in ("two", "one")]
  assert manifests[0]["split_stats"] == manifests[1]["split_stats"]
  assert (tmp_path / "two" / "checkpoints").is_dir()
