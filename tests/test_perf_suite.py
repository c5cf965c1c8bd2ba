"""The benchmark suite (`python -m benchmarks.run`) runs, at the smallest sizes.

PyTorch is only in the `bench` extra, so everything that needs it skips without it.
"""
import argparse
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


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
@pytest.mark.parametrize("mode,channels", [("class", 1), ("class", 3), ("sample", 1)])
def test_torch_pgd_round_matches_masked_pgd(mode, channels):
  """The PyTorch baseline computes the shipped round: the same δ up to float ties."""
  import numpy as np
  from benchmarks import bench_pgd
  from configs import salm
  from salm_jax.noise.salm import generator, masks, pgd
  sur, state = bench_pgd.make_surrogate("small_cnn", 4, channels)
  images, labels = bench_pgd.synthetic_batch(8, channels)
  images[0, :4], images[1, :4] = 0.0, 1.0  # rows on the clip's bounds
  rnd = bench_pgd.shipped_round(steps=3)
  assert (rnd.ratio, rnd.epsilon, rnd.step_size) == (0.1, 8 / 255, 1.6 / 255)
  zero, groups = bench_pgd.round_inputs(images, labels, mode)
  jax_delta, _ = bench_pgd.jax_round(sur, rnd, unroll=True)(state, images, labels, zero, groups)
  jax_delta = np.asarray(jax_delta)
  api = pgd.masked_pgd(sur.logits, state, images, labels, zero, mask_ratio=rnd.ratio,
                       epsilon=rnd.epsilon, step_size=rnd.step_size, steps=rnd.steps,
                       task=sur.task, groups=groups)
  np.testing.assert_allclose(np.asarray(api), jax_delta, atol=1e-7)  # the public round
  noise = salm.get_config("breastmnist").noise
  noise.pgd_steps = rnd.steps
  generator_delta, _ = generator.compiled_steps(sur, noise).pgd_round(state, images, labels, zero,
                                                                      None, groups, None)
  np.testing.assert_array_equal(np.asarray(generator_delta), jax_delta)  # what `generate` runs
  assert jax_delta.shape[0] == (2 if mode == "class" else 8)
  kept = (np.abs(jax_delta).sum(-1) > 0).sum((1, 2))
  assert (kept == masks.num_kept(rnd.ratio, 28 * 28)).all()  # the top-k projection
  _, run_torch, box = bench_pgd.torch_contender(sur, state, "small_cnn", 4, channels, images,
                                                labels, rnd, mode)
  run_torch()
  same = np.abs(jax_delta - box["first"]) < 1e-6
  support = (jax_delta != 0) | (box["first"] != 0)
  assert same[support].mean() > 0.98 and same.mean() > 0.99


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
    assert 0 < out["pixels_changed_uint8"] <= 0.1  # δ on its own top 10 % after the round


def test_scale_child_reports_rounds_and_memory(medmnist_dir):
  from benchmarks import bench_scale
  args = _part_args(bench_scale, data_dir=str(medmnist_dir), surrogate="small_cnn:4")
  out = bench_scale.child(32, args)
  assert out["n"] == 32 and out["round1_s"] > 0 and out["round2_s"] > 0
  assert out["host_peak_mib"] > 0 and out["noise_mib"] > 0
  fit = bench_scale.linear_fit([1, 2, 3], [2.0, 4.0, 6.0])
  assert abs(fit["slope"] - 2.0) < 1e-9 and fit["max_rel_residual"] < 1e-9


def test_memory_bench_compares_each_layout_with_its_groups_first():
  from benchmarks import bench_memory  # pylint: disable=g-import-not-at-top
  assert bench_memory.parse_layouts("1x1,2x1/1x4,2x4@1") == [
      [(1, 1, None), (2, 1, None)], [(1, 4, None), (2, 4, 1)]]
  with pytest.raises(ValueError, match="reference"):
    bench_memory.parse_layouts("1x1,2x1/1x4")
  assert bench_memory.threads(4, 1) == 4 and bench_memory.threads(1, 2) == 2


def test_model_bench_times_both_convolutions():
  """`benchmarks.bench_models` times the library's and XLA's conv for each model."""
  from benchmarks import bench_models
  args = argparse.Namespace(models="vgg16", width=2, batch=2, repeats=1)
  result = bench_models.run(args)
  assert set(result["models"]["vgg16"]) == {"library conv", "xla conv"}
  assert all(t["best"] > 0 for t in result["models"]["vgg16"].values())
