"""Join the other processes of a multi-host run (TPU pod, SLURM), and do nothing otherwise.

JAX runs one process per host; on a TPU pod slice or a multi-node SLURM job
every process must call `jax.distributed.initialize()` before it touches a
device, so that `jax.devices()` spans all hosts and the sharded generator's
mesh covers the whole pod. On a laptop or a single GPU node that call would
fail or hang waiting for peers, so `maybe_initialize` calls it only when the
environment says this is one process of several:

* `SALM_DISTRIBUTED=1` forces it (launch/tpu_pod.sh sets it), `SALM_DISTRIBUTED=0`
  forbids it;
* SLURM: inside `srun` with more than one task (SLURM_NTASKS > 1);
* Cloud TPU: more than one worker in TPU_WORKER_HOSTNAMES / TPU_PROCESS_ADDRESSES.

A cluster JAX does not detect by itself can pass SALM_COORDINATOR_ADDRESS
(host:port), SALM_NUM_PROCESSES and SALM_PROCESS_ID.

With one SLURM task per node driving all of the node's GPUs (as
launch/slurm_gpu.sh asks), JAX's SLURM detection would give each process only
GPU number SLURM_LOCALID; `local_device_ids` is therefore set to every GPU
the task can see.
"""
from __future__ import annotations

import os
from typing import Mapping

from absl import logging

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _int(env: Mapping[str, str], key: str, default: int = 1) -> int:
  """An integer variable; SLURM's per-node counts like '2(x3)' give their first number."""
  try:
    return int(str(env.get(key, default)).split("(")[0].split(",")[0])
  except ValueError:
    return default


def should_initialize(env: Mapping[str, str] | None = None) -> bool:
  """Whether `env` (default: os.environ) describes one process of a multi-process run."""
  env = os.environ if env is None else env
  forced = env.get("SALM_DISTRIBUTED", "").strip().lower()
  if forced in _TRUE:
    return True
  if forced in _FALSE:
    return False
  if forced:
    raise ValueError(f"SALM_DISTRIBUTED={env['SALM_DISTRIBUTED']!r}: expected one of "
                     f"{_TRUE + _FALSE}.")
  if "SLURM_JOB_ID" in env and "SLURM_PROCID" in env and _int(env, "SLURM_NTASKS") > 1:
    return True
  hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES") or ""
  return len([h for h in hosts.split(",") if h.strip()]) > 1


def initialize_kwargs(env: Mapping[str, str] | None = None) -> dict:
  """Arguments for `jax.distributed.initialize` beyond what JAX detects on its own."""
  env = os.environ if env is None else env
  kwargs: dict = {}
  if env.get("SALM_COORDINATOR_ADDRESS"):
    kwargs["coordinator_address"] = env["SALM_COORDINATOR_ADDRESS"]
    kwargs["num_processes"] = _int(env, "SALM_NUM_PROCESSES")
    kwargs["process_id"] = _int(env, "SALM_PROCESS_ID", 0)
  per_node = next((k for k in ("SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE")
                   if env.get(k)), None)
  if "SLURM_JOB_ID" in env and per_node and _int(env, per_node) == 1:
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    n_gpus = len(visible) or _int(env, "SLURM_GPUS_ON_NODE", 0)
    if n_gpus > 0:
      kwargs["local_device_ids"] = list(range(n_gpus))
  return kwargs


def maybe_initialize(env: Mapping[str, str] | None = None) -> bool:
  """Calls `jax.distributed.initialize` for a multi-process run; returns whether it did.

  Call it first thing in an entry point, before any JAX computation. A
  single-process run (no cluster variables) is left untouched.
  """
  if not should_initialize(env):
    return False
  import jax  # only a multi-process run needs JAX here
  if jax.distributed.is_initialized():
    return False
  kwargs = initialize_kwargs(env)
  logging.info("jax.distributed.initialize(%s)", kwargs)
  jax.distributed.initialize(**kwargs)
  logging.info("Process %d of %d; %d local / %d global devices.", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True
