"""The benchmark scripts and the suite (`python -m benchmarks.run`) run, at the smallest sizes."""
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
         "--variants=clean,ops,random_class,flat_antipodal",
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
      ("clean", "small_cnn"), ("ops", "small_cnn"), ("random_class", "small_cnn"),
      ("flat_antipodal", "small_cnn")]
  assert all(r["defense"] == "none" for r in rows)
  proc = subprocess.run(cmd + ["--defense=crop_pad+hflip", "--variants=clean"], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  rows = json.loads(out.read_text())["rows"]  # a defended victim is a row of its own
  assert [(r["variant"], r["defense"]) for r in rows[3:]] == [
      ("flat_antipodal", "none"), ("clean", "crop_pad+hflip")]
  ops = rows[1]["distortion"]
  assert ops["linf_uint8"] > 8 and 0 < ops["frac_changed"] < 0.01  # one pixel, unbounded
  assert rows[2]["distortion"]["linf_uint8"] == 8                   # ±8/255 signs
  assert rows[3]["distortion"]["frac_changed"] == pytest.approx(0.101, abs=0.001)
  report = subprocess.run([sys.executable, "-m", "benchmarks.frontier_report", f"--json={out}",
                           f"--out_md={tmp_path / 't.md'}", f"--out_png={tmp_path / 'f.png'}"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert report.returncode == 0, report.stderr[-3000:]
  table = (tmp_path / "t.md").read_text()
  assert "| ops | 0 |" in table and (tmp_path / "f.png").stat().st_size > 0
  assert "| clean [crop_pad+hflip] | 0 |" in table


def test_distortion_per_image_reads_the_written_files_and_keeps_one_row_each(medmnist_dir,
                                                                           tmp_path):
  """The SSIM floor holds on every changed image of the file; a rerun replaces its rows."""
  out = tmp_path / "distortion.json"
  cmd = [sys.executable, "-m", "benchmarks.distortion_per_image", "--seeds=0",
         "--variants=clean,lattice_onesided_35db,lattice_onesided_35db_ssim95",
         f"--data_dir={medmnist_dir}", f"--workdir={tmp_path / 'runs'}", f"--json_out={out}"]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  for _ in range(2):
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
  assert sorted(rows) == ["lattice_onesided_35db", "lattice_onesided_35db_ssim95"]
  assert rows["lattice_onesided_35db_ssim95"]["ssim_changed_min"] >= 0.95
  assert rows["lattice_onesided_35db_ssim95"]["psnr_changed_min"] >= 35.0
  floored, free = rows["lattice_onesided_35db_ssim95"], rows["lattice_onesided_35db"]
  assert 0 < floored["pixels_at_linf"] <= free["pixels_at_linf"] <= 1  # the floor lowers dots
  assert 0 < floored["mean_change_uint8"] <= free["mean_change_uint8"] <= free["linf_uint8"]
  assert "| breastmnist | lattice_onesided_35db_ssim95 | 0 |" in proc.stdout
  bad = subprocess.run(cmd[:3] + ["--variants=nope", f"--json_out={out}"], cwd=REPO_ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "unknown variants ['nope']" in bad.stderr


def test_texture_mechanism_scores_clean_test_images_against_their_local_contrast(medmnist_dir,
                                                                                tmp_path):
  """One row per (variant, seed, victim), the textured class read from the written file."""
  out = tmp_path / "mechanism.json"
  cmd = [sys.executable, "-m", "benchmarks.texture_mechanism", "--seeds=0",
         "--variants=clean,lattice_busiest_ssim95", "--archs=small_cnn",
         f"--data_dir={medmnist_dir}", f"--workdir={tmp_path / 'runs'}", f"--json_out={out}"]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  for _ in range(2):  # the second run resumes: nothing to do
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  rows = json.loads(out.read_text())["rows"]
  assert [r["variant"] for r in rows] == ["clean", "lattice_busiest_ssim95"]
  for r in rows:
    assert -1 <= r["rho"] <= 1 and -1 <= r["rho_within_class"] <= 1 and 0 <= r["auc"] <= 1
    assert r["textured_class"] in (0, 1) and 0 <= r["contrast_auc_for_textured"] <= 1


def test_spearman_matches_its_definition_with_ties():
  code = ("from benchmarks import texture_mechanism as t; import numpy as np; "
          "print(t.spearman(np.array([1., 2, 3, 4]), np.array([10., 20, 30, 40])), "
          "t.spearman(np.array([1., 2, 3, 4]), np.array([4., 3, 2, 1])), "
          "round(t.spearman(np.array([1., 1, 2, 3]), np.array([1., 2, 3, 4])), 6), "
          "t.spearman(np.array([1., 1]), np.array([1., 2])))")
  # Ties share their mean rank (1.5, 1.5, 3, 4): r = 0.948683 against 1..4.
  assert _last_line_of_python(code).split() == ["1.0", "-1.0", "0.948683", "nan"]


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
          "c = frontier.variant_config('salm_class', 'breastmnist', 1, '/tmp/w'); "
          "e = frontier.variant_config('em', 'breastmnist', 1, '/tmp/w'); "
          "print(json.dumps([c.surrogate.width, c.evaluation.epochs, list(c.evaluation.archs), "
          "c.noise.mode, c.noise.mask_ratio, e.noise.mask_ratio, c.seed]))")
  width, epochs, archs, mode, ratio, em_ratio, seed = json.loads(_last_line_of_python(code))
  assert width == 64 and epochs == 100 and len(archs) == 6 and "small_cnn" in archs
  assert mode == "class" and ratio == 0.1   # the variant's overrides on top
  assert em_ratio == 1.0 and seed == 1


def test_frontier_variants_keep_their_method_when_the_default_changes():
  """SALM's variants are SALM on class-wise SALM's base; 'default' is what configs/salm.py ships
  and makes the same noise settings as lattice_busiest_ssim95 on both datasets (whose files
  are those of round five's lattice_onesided_35db_ssim95 on BreastMNIST and
  lattice_major_35db_ssim95 on PneumoniaMNIST: the rule picks the same class)."""
  code = ("import json; from absl import flags; from benchmarks import frontier; "
          "from salm_jax.noise import budget; flags.FLAGS(['frontier', '--data_dir=/nowhere']); "
          "v = lambda n, d='breastmnist': frontier.variant_config(n, d, 0, '/tmp/w').noise; "
          "s, d, l = v('salm_class'), v('default'), v('lattice_busiest_ssim95'); "
          "print(json.dumps([s.method, s.epsilon * 255, d.method, l.method, "
          "d.lattice.to_dict() == l.lattice.to_dict(), round(d.epsilon * 255), "
          "v('default', 'pneumoniamnist').lattice.to_dict() == "
          "v('lattice_busiest_ssim95', 'pneumoniamnist').lattice.to_dict(), "
          "round(budget.resolve(frontier.variant_config("
          "'lattice_busiest_ssim95', 'breastmnist', 0, '/tmp/w')).noise.epsilon * 255)]))")
  assert json.loads(_last_line_of_python(code)) == ["salm", 8.0, "lattice", "lattice", True,
                                                    18, True, 18]


def test_frontier_makes_the_run_a_control_reads_first():
  """A control's '{seed_dir:NAME}' names a run it needs, unless --set replaces that field."""
  code = ("from absl import flags; from benchmarks import frontier; "
          "flags.FLAGS(['frontier']); a = frontier._needs('random_class'); "
          "flags.FLAGS(['frontier', '--set=noise.random.support_from=']); "
          "print(a, frontier._needs('random_class'), frontier._needs('salm_class'))")
  assert _last_line_of_python(code) == "['salm_class'] [] []"


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


def test_report_counts_the_seeds_each_victim_is_held_on():
  code = ("from benchmarks import frontier_report as f; "
          "rows = [dict(variant='v', seed=s, arch='a', last=dict(auc=x, acc=0.7), distortion={}, "
          "generator_seconds=0) for s, x in ((0, 0.5), (1, 0.7), (2, 0.6))]; "
          "print([l for l in f.markdown(f.summarize(rows)).splitlines() if '0: ' in l][0])")
  assert _last_line_of_python(code) == "| v | 0: 0.500 1: 0.700 2: 0.600 (2/3) |"


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


def test_suite_sizes_change_only_known_arguments():
  """Every key of a `benchmarks.run` size preset is an argument of some part."""
  from benchmarks import run
  known = set()
  for module in run.PARTS.values():
    known |= set(vars(run.part_args(module, "/data", "full")))
  for size, preset in run.SIZES.items():
    assert set(preset) <= known, (size, set(preset) - known)
  short = run.part_args(run.PARTS["pgd"], "/data", "short")
  assert short.steps == 5 and short.cases.startswith("resnet18:64:1")


# The benchmark suite (`python -m benchmarks.run`): smoke tests at the smallest sizes.
# PyTorch is only in the `bench` extra, so everything that needs it skips without it.

def _has_torch() -> bool:
  try:
    import torch  # noqa: F401
    return True
  except ImportError:
    return False


needs_torch = pytest.mark.skipif(not _has_torch(), reason="torch not installed (bench extra)")


@needs_torch
@pytest.mark.parametrize("name,channels", [("resnet18", 1), ("small_cnn", 3)])
def test_torch_twin_has_same_parameters_and_logits(name, channels):
  import numpy as np
  import torch
  from flax import nnx
  from benchmarks import torch_models
  from salm_jax.models import create_model
  model = create_model(name, num_classes=3, in_channels=channels, image_size=28,
                       rngs=nnx.Rngs(0), width=4)
  model.eval()
  twin = torch_models.copy_from_nnx(
      torch_models.create(name, num_classes=3, in_channels=channels, width=4), model).eval()
  x = np.random.default_rng(0).random((2, 28, 28, channels), dtype=np.float32)
  with torch.no_grad():
    got = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  n_flax = sum(np.size(a) for a in jax_leaves(nnx.state(model, nnx.Param)))
  assert torch_models.num_params(twin) == n_flax
  np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-4)


def jax_leaves(tree):
  import jax
  return jax.tree.leaves(tree)


@needs_torch
def test_torch_pgd_round_matches_masked_pgd():
  """The PyTorch baseline computes what salm_jax computes (same δ up to float ties)."""
  import jax.numpy as jnp
  import numpy as np
  from benchmarks import bench_pgd
  sur, state = bench_pgd.make_surrogate("small_cnn", 4, 1)
  images, labels = bench_pgd.synthetic_batch(8, 1)
  fn = bench_pgd.jax_round(sur, steps=3, unroll=True)
  jax_delta, _ = fn(state, jnp.asarray(images), jnp.asarray(labels), jnp.zeros(images.shape))
  _, run_torch, box = bench_pgd.torch_contender(sur, state, "small_cnn", 4, 1, images, labels, 3)
  run_torch()
  assert np.mean(np.abs(np.asarray(jax_delta) - box["first"]) < 1e-6) > 0.99


def test_suite_quick_run_writes_results(tmp_path):
  """`python -m benchmarks.run --quick`: tables printed, JSON with the machine written."""
  cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--only=pgd,levers",
         f"--results_dir={tmp_path}"]
  env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
  proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert "| small_cnn | 4 | 1 |" in proc.stdout
  pgd = json.loads((tmp_path / "pgd.json").read_text())
  assert pgd["machine"]["cores"] >= 1 and pgd["machine"]["jax"]
  row = pgd["rows"][0]
  assert row["jax_img_steps_s"] > 0 and len(row["load_after"]) == 3
  if _has_torch():
    assert row["params_jax"] == row["params_torch"] and row["ratio"] > 0
  levers = json.loads((tmp_path / "levers.json").read_text())
  assert [r["variant"] for r in levers["rows"]][:2] == ["default", "unroll=1"]


def _part_args(module, **overrides):
  import argparse
  parser = argparse.ArgumentParser()
  module.add_arguments(parser)
  args = parser.parse_args([])
  for key, value in overrides.items():
    setattr(args, key, value)
  return args


def test_generate_child_runs_each_implementation(medmnist_dir):
  from benchmarks import bench_generate
  args = _part_args(bench_generate, data_dir=str(medmnist_dir), num_images=32, max_rounds=1,
                    min_rounds=1, surrogate="small_cnn:4")
  for impl in ("jax", "torch") if _has_torch() else ("jax",):
    out = bench_generate.child(impl, args)
    assert out["rounds"] == 1 and out["num_images"] == 32 and out["peak_rss_mib"] > 0
    assert 0 <= out["final_accuracy"] <= 1 and out["linf_uint8"] <= 8


def test_scale_child_reports_rounds_and_memory(medmnist_dir):
  from benchmarks import bench_scale
  args = _part_args(bench_scale, data_dir=str(medmnist_dir), surrogate="small_cnn:4")
  out = bench_scale.child(32, args)
  assert out["n"] == 32 and out["round1_s"] > 0 and out["round2_s"] > 0
  assert out["host_peak_mib"] > 0 and out["noise_mib"] > 0
  fit = bench_scale.linear_fit([1, 2, 3], [2.0, 4.0, 6.0])
  assert abs(fit["slope"] - 2.0) < 1e-9 and fit["max_rel_residual"] < 1e-9


@pytest.mark.parametrize("size,kernel", [(28, 3), (7, 3), (14, 1), (9, 7), (8, 2)])
def test_phase_split_input_gradient_equals_xla(size, kernel):
  """The stride-2 benchmark's contender computes XLA's input gradient, any size and kernel."""
  import jax
  import numpy as np
  from benchmarks import stride2_input_gradient as s2
  kx, kw, kg = jax.random.split(jax.random.key(size * 31 + kernel), 3)
  x = jax.random.normal(kx, (2, size, size + 1, 3))
  w = jax.random.normal(kw, (kernel, kernel, 3, 5))
  pads = ((kernel // 2, (kernel - 1) // 2), (kernel // 2, kernel // 2))
  g = jax.random.normal(kg, s2.forward(x, w, pads).shape)
  np.testing.assert_allclose(s2.phase_split_input_gradient(g, w, x.shape, pads),
                             s2.xla_input_gradient(x, w, g, pads), rtol=1e-4, atol=1e-4)


def test_conv_layouts_compute_the_same_convolution_and_input_gradient():
  """`conv_layout` times NHWC against NCHW on the same numbers: outputs agree after a transpose."""
  import numpy as np
  from benchmarks import conv_layout
  out = {layout: conv_layout.forward_and_input_gradient(
      *conv_layout.operands(2, 7, 4, layout), layout) for layout in conv_layout.LAYOUTS}
  for nhwc, nchw in zip(out["NHWC"], out["NCHW"]):
    np.testing.assert_allclose(np.asarray(nchw).transpose(0, 2, 3, 1), nhwc, rtol=1e-5, atol=1e-5)


def test_host_devices_times_the_round_on_one_and_two_host_devices(tmp_path):
  """Each count runs in its own process with that many XLA:CPU devices, the batch split over them."""
  import json
  out = tmp_path / "host_devices_small_cnn_4_1.json"
  cmd = [sys.executable, "-m", "benchmarks.host_devices", "--case=small_cnn:4:1", "--batch=4",
         "--steps=1", "--repeats=1", f"--results_dir={tmp_path}"]
  proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = json.loads(out.read_text())["rows"]
  assert [r["devices"] for r in rows] == [1, 2] and rows[0]["vs_one"] == 1.0
  assert all(r["img_steps_s"] > 0 for r in rows) and "| 2 |" in proc.stdout


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
