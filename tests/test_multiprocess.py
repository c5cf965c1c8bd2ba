"""Two processes under jax.distributed (localhost CPU, gloo) give one process's noise."""
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
  two = np.load(out)
  images, labels = tiny.blobs()
  one = generator.generate(tiny.config(stop_accuracy=1.01, max_rounds=2, mode=mode), images,
                           labels,
                           task=tasks.BINARY, num_classes=2, progress=False,
                           mesh=sharding.data_mesh(jax.devices()[:2]))
  np.testing.assert_array_equal(two["delta"], one.delta)
  np.testing.assert_array_equal(two["masks"], one.masks)
