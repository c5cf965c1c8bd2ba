"""The research harness: the frontier rows, their report, the clean MedMNIST reproduction."""
import json
import os
import subprocess
import sys

import pytest

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
  cmd = [sys.executable, "-m", "benchmarks.frontier",
         "--variants=clean,ops,random,flat",
         "--seeds=0", "--archs=small_cnn", f"--data_dir={medmnist_dir}", f"--json_out={out}",
         f"--workdir={tmp_path / 'runs'}", "--set=evaluation.epochs=1",
         "--set=evaluation.model_kwargs={'small_cnn': {'width': 4}}"]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  for _ in range(2):  # the second run finds every row done
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  rows = json.loads(out.read_text())["rows"]
  assert [(r["variant"], r["arch"]) for r in rows] == [
      ("clean", "small_cnn"), ("ops", "small_cnn"), ("random", "small_cnn"),
      ("flat", "small_cnn")]
  assert all(r["defense"] == "none" for r in rows)
  proc = subprocess.run(cmd + ["--defense=crop_pad+hflip", "--variants=clean"], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  rows = json.loads(out.read_text())["rows"]  # a defended victim is a row of its own
  assert [(r["variant"], r["defense"]) for r in rows[3:]] == [
      ("flat", "none"), ("clean", "crop_pad+hflip")]
  ops = rows[1]["distortion"]
  assert ops["linf_uint8"] > 8 and 0 < ops["frac_changed"] < 0.01  # one pixel, unbounded
  assert rows[2]["distortion"]["linf_uint8"] == 8                   # ±8/255 signs
  assert rows[3]["distortion"]["frac_changed_max"] <= 0.1          # at most 10 % of an image
  assert len(rows[1]["distortion"]["md5"]) == 32                    # the written file's MD5
  report = subprocess.run([sys.executable, "-m", "benchmarks.frontier_report", f"--json={out}",
                           f"--out_md={tmp_path / 't.md'}", f"--out_png={tmp_path / 'f.png'}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert report.returncode == 0, report.stderr[-3000:]
  table = (tmp_path / "t.md").read_text()
  assert "| ops | 0 |" in table and (tmp_path / "f.png").stat().st_size > 0
  assert "| clean [crop_pad+hflip] | 0 |" in table


def _last_line_of_python(code: str) -> str:
  """Runs `python -c code` from the repo root and returns its last line of stdout.

  In a subprocess: the benchmarks' absl flags would clash with the entry points' in this one.
  """
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout.splitlines()[-1]


def test_frontier_full_size_is_the_paper_config():
  """--size=full builds each variant from the ',full' config: wide surrogate, 100-epoch zoo."""
  code = ("import json; from absl import flags; from benchmarks import frontier; "
          "flags.FLAGS(['frontier', '--size=full', '--data_dir=/nowhere']); "
          "c = frontier.variant_config('salm_sample', 'breastmnist', 1, '/tmp/w'); "
          "e = frontier.variant_config('em', 'breastmnist', 1, '/tmp/w'); "
          "print(json.dumps([c.surrogate.width, c.evaluation.epochs, list(c.evaluation.archs), "
          "c.noise.mode, c.noise.mask_ratio, e.noise.mask_ratio, c.seed]))")
  width, epochs, archs, mode, ratio, em_ratio, seed = json.loads(_last_line_of_python(code))
  assert width == 64 and epochs == 100 and len(archs) == 6 and "small_cnn" in archs
  assert mode == "sample" and ratio == 0.1   # the variant's overrides on top
  assert em_ratio == 1.0 and seed == 1


def test_frontier_variants_are_the_method_configs_with_their_overrides():
  """'salm' is what configs/salm.py ships; the lattice rows' names give the same texture
  as configs/lattice.py with the class they leave bare."""
  code = ("import json; from absl import flags; from benchmarks import frontier; "
          "from salm_jax.noise import budget; flags.FLAGS(['frontier', '--data_dir=/nowhere']); "
          "v = lambda n, d='breastmnist': frontier.variant_config(n, d, 0, '/tmp/w').noise; "
          "s, l, o = v('salm'), v('lattice'), v('lattice_onesided_35db_ssim95'); "
          "print(json.dumps([s.method, s.mode, s.mask_ratio, s.epsilon * 255, l.method, "
          "o.lattice.bare, round(budget.resolve(frontier.variant_config("
          "'lattice_onesided_35db_ssim95', 'breastmnist', 0, '/tmp/w')).noise.epsilon * 255), "
          "round(l.epsilon * 255)]))")
  assert json.loads(_last_line_of_python(code)) == ["salm", "auto", 0.1, 8.0, "lattice",
                                                    "largest", 18, 18]


def test_frontier_makes_the_run_a_control_reads_first():
  """A control's '{seed_dir:NAME}' names a run it needs, unless --set replaces that field."""
  code = ("from absl import flags; from benchmarks import frontier; "
          "flags.FLAGS(['frontier']); a = frontier._needs('random_salm'); "
          "flags.FLAGS(['frontier', '--set=noise.random.support_from=']); "
          "print(a, frontier._needs('random_salm'), frontier._needs('salm'))")
  assert _last_line_of_python(code) == "['salm'] [] []"


def test_report_keeps_the_latest_row_of_a_rerun():
  code = ("from benchmarks import frontier_report as f; "
          "r = lambda v, a, **k: dict(variant=v, seed=0, arch='x', auc=a, **k); "
          "rows = [r('s', 1), r('c', 2), r('s', 3), r('s', 4, defense='jpeg')]; "
          "print([x['auc'] for x in f.latest_rows(rows)])")
  assert _last_line_of_python(code) == "[2, 3, 4]"


def test_report_complete_keeps_only_variants_with_every_victim_on_each_seed():
  # 'probe' lacks victim b on seed 1 and 'jpeg' is its own group: only 'full' has both everywhere.
  code = ("from benchmarks import frontier_report as f; "
          "r = lambda v, s, a, **k: dict(variant=v, seed=s, arch=a, **k); "
          "rows = [r(v, s, a) for v in ('full', 'probe') for s in (0, 1) for a in 'ab' "
          "if (v, s, a) != ('probe', 1, 'b')] + [r('full', 0, 'a', defense='jpeg')]; "
          "kept, out = f.complete_rows(rows, ['a', 'b']); "
          "print(sorted({x['variant'] for x in kept}), len(kept), sorted(out))")
  assert _last_line_of_python(code) == "['full'] 4 ['full [jpeg]', 'probe']"


def test_report_gives_each_victims_auc_per_seed():
  code = ("from benchmarks import frontier_report as f; "
          "rows = [dict(variant='v', seed=s, arch='a', last=dict(auc=x, acc=0.7), distortion={}, "
          "generator_seconds=0) for s, x in ((0, 0.5), (1, 0.7), (2, 0.6))]; "
          "print([l for l in f.markdown(f.summarize(rows)).splitlines() if '0: ' in l][0])")
  assert _last_line_of_python(code) == "| v | 0: 0.500 1: 0.700 2: 0.600 |"


def test_report_gives_the_flipped_auc_and_the_val_auc_where_rows_have_it():
  code = ("from benchmarks import frontier_report as f; "
          "row = lambda v, s, x, **k: dict(variant=v, seed=s, arch='a', last=dict(auc=x, acc=0.7, "
          "**k), distortion={}, generator_seconds=0); "
          "rows = [row('v', 0, 0.2, val_auc=0.3), row('v', 1, 0.6, val_auc=0.5), row('old', 0, 0.9)]; "
          "lines = f.markdown(f.summarize(rows)).splitlines(); "
          "flip, val = (lines.index(l) for l in lines if l.startswith(('max(AUC', 'Clean valid'))); "
          "print(lines[flip + 4], lines[flip + 5], lines[val + 4:])")
  assert _last_line_of_python(code) == (
      "| v | 0.700 ± 0.141 | | old | 0.900 (1 seed) | ['| v | 0.400 ± 0.141 |']")


def test_a_vit_with_its_patch_set_is_a_victim_of_its_own():
  from benchmarks import frontier_rows  # pylint: disable=g-import-not-at-top
  row = lambda **kwargs: dict(variant="v", seed=0, arch="vit_small",
                              victim=dict(model_kwargs=kwargs))
  assert frontier_rows.row_victim(row(dim=64)) == "vit_small"
  assert frontier_rows.row_victim(row(dim=64, patch_size=7)) == "vit_small/patch7"
  assert frontier_rows.row_key(row(patch_size=7)) != frontier_rows.row_key(row())
  assert frontier_rows.row_victim(dict(arch="small_cnn")) == "small_cnn"  # rows before 'victim'
  code = ("from benchmarks import frontier_report as f; "
          "row = lambda s, x, **k: dict(variant='v', seed=s, arch='vit_small', last=dict(auc=x, "
          "acc=0.7), distortion={}, generator_seconds=0, victim=dict(model_kwargs=k)); "
          "rows = f.latest_rows([row(0, 0.5), row(0, 0.7, patch_size=7)]); "
          "print(sorted(f.summarize(rows)['v']['archs']))")
  assert _last_line_of_python(code) == "['vit_small', 'vit_small/patch7']"
