"""One process of the 2-process test: runs the generator under jax.distributed.

usage: multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_PREFIX [MODE]

Each process writes OUT_PREFIX.<id>.npz with its own rows' noise and their row numbers.
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main():
  pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
  mode = sys.argv[5] if len(sys.argv) > 5 else "sample"
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
  from salm_jax.noise.salm import generator  # pylint: disable=g-import-not-at-top
  from salm_jax import tasks
  from tests.helpers import tiny  # pylint: disable=g-import-not-at-top
  images, labels = tiny.blobs()
  result = generator.generate(tiny.config(stop_accuracy=1.01, max_rounds=2, mode=mode), images,
                              labels,
                              task=tasks.BINARY, num_classes=2, progress=False)
  rows = np.arange(len(images)) if result.rows is None else result.rows
  np.savez(f"{out}.{pid}.npz", delta=result.delta, masks=result.masks, rows=rows)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
