"""The benchmark scripts run, on the real MedMNIST files, at the smallest size."""
import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_clean_medmnist_writes_one_run_per_seed_and_dataset(medmnist_dir, tmp_path):
  out = tmp_path / "clean.json"
  cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "clean_medmnist.py"),
         "--datasets=breastmnist,pneumoniamnist", "--arch=small_cnn", "--width=4", "--epochs=1",
         "--seeds=0,1", f"--data_dir={medmnist_dir}", f"--json_out={out}"]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  runs = json.loads(out.read_text())["runs"]
  # Seeds outermost, so a run cut short still has every dataset's first seed.
  assert [(r["dataset"], r["seed"]) for r in runs] == [
      ("breastmnist", 0), ("pneumoniamnist", 0), ("breastmnist", 1), ("pneumoniamnist", 1)]
  for r in runs:
    assert r["last"]["epoch"] == 1 and 0 <= r["last"]["acc"] <= 1 and len(r["history"]) == 1
  final = proc.stdout[proc.stdout.rindex("| dataset |"):]  # rows also print as runs finish
  table = [l for l in final.splitlines() if l.startswith("| breastmnist")]
  assert len(table) == 3 and "| mean |" in table[-1]  # two seeds, then their mean
  assert "0.863 / 0.901" in table[-1]                 # the published figure beside it
