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


def test_frontier_resumes_and_reports(medmnist_dir, tmp_path):
  """Model-free variants, one tiny victim: rows land in the JSON, a rerun adds none."""
  out = tmp_path / "rows.json"
  cmd = [sys.executable, "-m", "benchmarks.frontier", "--variants=clean,ops,random_class",
         "--seeds=0", "--archs=small_cnn", f"--data_dir={medmnist_dir}", f"--json_out={out}",
         f"--workdir={tmp_path / 'runs'}", "--set=evaluation.epochs=1",
         "--set=noise.random.support_from=", "--set=evaluation.model_kwargs={'small_cnn': {'width': 4}}"]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  for _ in range(2):  # the second run finds every row done
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  rows = json.loads(out.read_text())["rows"]
  assert [(r["variant"], r["arch"]) for r in rows] == [
      ("clean", "small_cnn"), ("ops", "small_cnn"), ("random_class", "small_cnn")]
  ops = rows[1]["distortion"]
  assert ops["linf_uint8"] > 8 and 0 < ops["frac_changed"] < 0.01  # one pixel, unbounded
  assert rows[2]["distortion"]["linf_uint8"] == 8                   # ±8/255 signs
  report = subprocess.run([sys.executable, "-m", "benchmarks.frontier_report", f"--json={out}",
                           f"--out_md={tmp_path / 't.md'}", f"--out_png={tmp_path / 'f.png'}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert report.returncode == 0, report.stderr[-3000:]
  table = (tmp_path / "t.md").read_text()
  assert "| ops | 0 |" in table and (tmp_path / "f.png").stat().st_size > 0
