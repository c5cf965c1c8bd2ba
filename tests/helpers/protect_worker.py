"""One process of a multi-process protect run on a custom npz, under jax.distributed.

usage: protect_worker.py PROCESS_ID NUM_PROCESSES PORT WORKDIR NPZ LOCAL_DEVICES [MODE]
"""
import os
import sys

os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={sys.argv[6]}"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main():
  pid, nproc, port, workdir, npz = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                    sys.argv[4], sys.argv[5])
  mode = sys.argv[7] if len(sys.argv) > 7 else "class"
  if nproc > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
  from configs import salm as salm_config  # pylint: disable=g-import-not-at-top
  from salm_jax import protect  # pylint: disable=g-import-not-at-top
  config = salm_config.get_config("synthetic,tiny")
  config.dataset.name = npz
  config.noise.update(mode=mode, pgd_batch_size=16, max_rounds=2, stop_accuracy=1.01)
  config.tensorboard = False
  protect.protect(config, workdir, progress=False)
  if nproc > 1:
    jax.distributed.shutdown()


if __name__ == "__main__":
  main()
