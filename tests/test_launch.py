"""Entry points end to end on tiny synthetic data: configs, stages, overwrite refusal, resume."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from configs import em, salm
from tests.conftest import REPO_ROOT

TINY = f"--config={REPO_ROOT / 'configs' / 'salm.py'}:synthetic,tiny"


def _launch(module, workdir, *args, check=True, timeout=600):
  cmd = [sys.executable, "-m", f"launch.{module}", TINY, f"--workdir={workdir}",
         "--progress=false", *args]
  proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
  if check:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return proc


@pytest.mark.parametrize("arg", ["synthetic", "synthetic,tiny", "breastmnist",
                                 "pneumoniamnist,full", "pathmnist,size=64,full"])
def test_every_config_variant_builds(arg):
  cfg = salm.get_config(arg)
  assert 0 < cfg.noise.mask_ratio <= 1 and cfg.evaluation.archs
  assert em.get_config(arg).noise.mask_ratio == 1.0


def test_bad_config_arg_is_rejected():
  with pytest.raises(ValueError, match="Unknown config option"):
    salm.get_config("breastmnist,huge")


def _parse(monkeypatch, arg, *overrides):
  """Parses `--config=configs/salm.py:<arg> <overrides>` as the entry points do."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv)
  argv = ["prog", f"--config={REPO_ROOT / 'configs' / 'salm.py'}:{arg}", *overrides]
  monkeypatch.setattr(sys, "argv", argv)  # config_flags reads overrides from sys.argv
  fv(argv)
  return fv


def test_config_fields_override_from_flags(monkeypatch):
  fv = _parse(monkeypatch, "breastmnist", "--config.noise.mask_ratio=0.25",
              "--config.evaluation.epochs=3", "--config.surrogate.model=resnet18",
              "--config.sweep.grid=(0.1, 0.3)")
  assert fv.config.noise.mask_ratio == 0.25
  assert fv.config.evaluation.epochs == 3
  assert fv.config.dataset.name == "breastmnist"
  assert tuple(fv.config.sweep.grid) == (0.1, 0.3)
  with pytest.raises(flags.IllegalFlagValueError):
    _parse(monkeypatch, "synthetic", "--config.noise.mask_ratio=lots")


@pytest.fixture(scope="module")
def protected_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  proc = _launch("protect", workdir, "--config.noise.mask_ratio=0.2")
  assert "Protected dataset:" in proc.stdout
  return workdir


def test_protect_writes_dataset_manifest_and_config(protected_workdir):
  saved = json.loads((protected_workdir / "config.json").read_text())
  assert saved["noise"]["mask_ratio"] == 0.2
  manifest = json.loads((protected_workdir / "protected" / "manifest.json").read_text())
  assert manifest["mask_ratio"] == 0.2 and manifest["perturbed_splits"] == ["train"]
  with np.load(protected_workdir / "protected" / "phantom.npz") as f:
    assert f["train_images"].dtype == np.uint8 and f["train_images"].shape == (64, 28, 28)
  assert (protected_workdir / "metrics.jsonl").read_text().count("\n") == manifest["rounds"]


def test_second_protect_is_refused_unless_overwrite(protected_workdir):
  before = (protected_workdir / "protected" / "manifest.json").read_bytes()
  proc = _launch("protect", protected_workdir, "--config.noise.mask_ratio=0.2", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr  # a user's mistake: one line
  error = proc.stderr.splitlines()[-1]
  assert error.startswith("error: ") and "--overwrite" in error and "finished run" in error
  assert (protected_workdir / "protected" / "manifest.json").read_bytes() == before


def test_evaluate_then_report(protected_workdir):
  proc = _launch("evaluate", protected_workdir, "--config.noise.mask_ratio=0.2")
  assert "results.md" in proc.stdout
  results = json.loads((protected_workdir / "evaluation" / "results.json").read_text())
  assert {r["arch"] for r in results["rows"]} == {"small_cnn"}
  proc = _launch("report", protected_workdir)
  assert (protected_workdir / "report" / "index.html").exists()
  assert "index.html" in proc.stdout


def test_evaluate_needs_protect_first(tmp_path):
  proc = _launch("evaluate", tmp_path / "empty", check=False)
  assert proc.returncode != 0 and "launch.protect" in proc.stderr


def test_overwrite_replaces_a_finished_run(protected_workdir, tmp_path):
  workdir = tmp_path / "copy"
  shutil.copytree(protected_workdir, workdir)  # a finished run, without paying for another
  first = json.loads((workdir / "protected" / "manifest.json").read_text())
  _launch("protect", workdir, "--overwrite", "--config.seed=1", "--config.noise.mask_ratio=0.2")
  second = json.loads((workdir / "protected" / "manifest.json").read_text())
  assert first["seed"] == 0 and second["seed"] == 1
  assert first["files"]["data"]["md5"] != second["files"]["data"]["md5"]


def test_run_all_with_a_relative_workdir_as_in_the_readme(tmp_path):
  """`launch.run` from another folder, relative --workdir (Orbax needs absolute paths).

  Its terminal stays short (no bars when stderr is not a terminal); the detail
  is in log.txt and the scalars in TensorBoard event files.
  """
  cmd = [sys.executable, "-m", "launch.run", TINY, "--workdir=runs/rel"]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  for needle in ("trained on clean", "trained on protected", "Report:", "Protected dataset:"):
    assert needle in proc.stdout
  assert "Protected dataset: runs/rel/protected/phantom.npz" in proc.stdout
  terminal_lines = (proc.stdout + proc.stderr).splitlines()
  assert len(terminal_lines) <= 15 and "\r" not in proc.stderr, proc.stderr
  assert proc.stderr.startswith("Log: runs/rel/log.txt (every round and epoch; ")
  workdir = tmp_path / "runs" / "rel"
  assert (workdir / "protected" / "manifest.json").exists()
  assert (workdir / "checkpoints").is_dir()
  assert (workdir / "report" / "index.html").exists()
  _check_log_and_tensorboard(workdir)


def _check_log_and_tensorboard(workdir):
  from tests.helpers.tensorboard_events import read_scalars  # needs the `test` extra
  rounds = json.loads((workdir / "protected" / "manifest.json").read_text())["rounds"]
  epochs = json.loads((workdir / "evaluation" / "results.json").read_text())["settings"]["epochs"]
  log = (workdir / "log.txt").read_text()
  logged_rounds = re.findall(r"\] round (\d+)/\d+: surrogate accuracy", log)
  assert logged_rounds == [str(r) for r in range(1, rounds + 1)]
  for victim in ("small_cnn|none|clean", "small_cnn|none|p=1"):
    assert log.count(f"{victim} epoch ") == epochs
  generator = read_scalars(workdir / "tensorboard")
  assert [s for s, _ in generator["generator/accuracy"]] == list(range(1, rounds + 1))
  history = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  np.testing.assert_allclose([v for _, v in generator["generator/accuracy"]],
                             [h["accuracy"] for h in history], rtol=1e-6)
  curves = json.loads((workdir / "evaluation" / "curves.json").read_text())
  for run_dir, curve in zip(("small_cnn_none_clean", "small_cnn_none_p=1"), curves):
    victim = read_scalars(workdir / "evaluation" / "tensorboard" / run_dir)
    assert set(victim) == {f"victim/{m}" for m in ("train_loss", "val_auc", "val_acc",
                                                    "test_auc", "test_acc")}
    assert [s for s, _ in victim["victim/test_acc"]] == list(range(1, epochs + 1))
    np.testing.assert_allclose([v for _, v in victim["victim/test_acc"]], curve["test_acc"],
                               rtol=1e-6)


def test_sweep_writes_one_row_per_point_and_seed_and_trains_clean_victims_once(tmp_path):
  proc = _launch("sweep", tmp_path, "--config.sweep.grid=(0.1, 1.0)",
                 "--config.sweep.seeds=(0, 1)")
  table = json.loads((tmp_path / "sweep" / "table.json").read_text())
  assert [(r["value"], r["seed"]) for r in table["rows"]] == [(0.1, 0), (1.0, 0), (0.1, 1),
                                                              (1.0, 1)]
  assert table["rows"][1]["frac_changed"] > table["rows"][0]["frac_changed"]
  assert [p["value"] for p in table["curve"]] == [0.1, 1.0]
  assert all(p["seeds"] == [0, 1] and p["zoo_auc"] is not None for p in table["curve"])
  clean = [r["results"]["small_cnn"]["clean"] for r in table["rows"]]
  assert clean[0] == clean[1] and clean[2] == clean[3]  # one clean victim per seed, reused
  assert sorted(os.listdir(tmp_path / "sweep" / "clean")) == ["seed0.json", "seed1.json"]
  assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 1000
  assert "table.md" in proc.stdout
  again = _launch("sweep", tmp_path, "--config.sweep.grid=(0.1, 1.0)",
                  "--config.sweep.seeds=(0, 1)", check=False)
  assert again.returncode == 2 and "overwrite" in again.stderr  # a finished sweep is kept


def _kill_after_checkpoint(workdir, args, round_dir="round_000001"):
  """Starts protect, SIGKILLs it once round 2's checkpoint exists; True if it was mid-run."""
  cmd = [sys.executable, "-m", "launch.protect", TINY, f"--workdir={workdir}",
         "--progress=false", *args]
  proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  target = workdir / "checkpoints" / round_dir
  while time.time() < deadline and proc.poll() is None and not target.exists():
    time.sleep(0.02)
  was_running = proc.poll() is None
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  return was_running


def test_resume_after_a_real_kill_gives_the_same_noise(tmp_path):
  args = ["--config.noise.max_rounds=5", "--config.noise.stop_accuracy=1.01",
          "--config.noise.pgd_steps=6"]
  killed, clean = tmp_path / "killed", tmp_path / "uninterrupted"
  assert _kill_after_checkpoint(killed, args), "the run finished before it could be killed"
  assert not (killed / "protected" / "manifest.json").exists()
  _launch("protect", killed, *args)
  _launch("protect", clean, *args)
  with np.load(killed / "protected" / "noise.npz") as a, np.load(
      clean / "protected" / "noise.npz") as b:
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
      np.testing.assert_array_equal(a[k], b[k])
  rounds = [json.loads(l)["round"] for l in (killed / "metrics.jsonl").read_text().splitlines()]
  assert rounds == [1, 2, 3, 4, 5]


def test_resume_with_a_changed_config_is_refused(tmp_path):
  assert _kill_after_checkpoint(tmp_path, ["--config.noise.max_rounds=5",
                                           "--config.noise.stop_accuracy=1.01",
                                           "--config.noise.pgd_steps=6"], "round_000000")
  proc = _launch("protect", tmp_path, "--config.noise.max_rounds=5",
                 "--config.noise.stop_accuracy=1.01", "--config.noise.pgd_steps=7", check=False)
  assert proc.returncode != 0 and "different config" in proc.stderr


@pytest.mark.skipif(shutil.which("salm-protect") is None, reason="package not pip-installed")
def test_console_scripts_are_installed():
  for name in ("salm-protect", "salm-evaluate", "salm-sweep", "salm-report", "salm-run"):
    out = subprocess.run([name, "--helpfull"], capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr  # absl exits 1 after --helpfull
    assert f"USAGE: {shutil.which(name)}" in text and "--workdir" in text, name
