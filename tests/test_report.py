"""The report and its figures, from a small workdir written here by hand.

The workdir holds every file the pipeline writes (config, protected dataset +
manifest, preview, metrics, evaluation results and curves, sweep table) in the
real formats, but without running the generator or training victims, so the
test is quick and checks the report alone.
"""
import json
import os

import matplotlib.image
import numpy as np
import pytest

from salm_jax import atomic, evaluation, figures, report, sweep
from salm_jax import workdir as wd
from salm_jax.data import make_phantom, write_protected
from salm_jax.evaluation import utility

EPS_UINT8 = 8
ARCHS = ("small_cnn", "resnet18")
DEFENSES = ("none", "jpeg:q=10")
SECTIONS = {"summary": "SALM protection report", "config": "Configuration",
            "images": "Images", "generator": "Noise generator",
            "utility": "Utility: distortion", "victims": "Victims: clean vs protected",
            "matrix": "Architecture × defense", "diagnostic": "Diagnostic utility",
            "sweep": "Sweep over noise.mask_ratio"}
PROTECT_ONLY = ("summary", "config", "images", "generator", "utility")


def _protect_outputs(workdir: str, rng: np.random.Generator) -> None:
  ds = make_phantom(n_train=48, n_val=8, n_test=8, size=28, seed=1)
  clean = ds.splits["train"].images
  mask = rng.random(clean.shape) < 0.1
  noise = rng.choice([-EPS_UINT8, EPS_UINT8], size=clean.shape) * mask
  noise[0] = 0  # one unchanged image: infinite PSNR must not break anything
  mask[0] = False
  prot = np.clip(clean.astype(np.int16) + noise, 0, 255).astype(np.uint8)
  config = {"noise": {"epsilon": EPS_UINT8 / 255, "mask_ratio": 0.1},
            "surrogate": {"model": "small_cnn"}, "seed": 0,
            "note": "<script>alert('x')</script>"}
  with open(wd.path(workdir, wd.CONFIG), "w", encoding="utf-8") as f:
    json.dump(config, f)
  write_protected(wd.path(workdir, wd.PROTECTED), ds, {"train": prot}, {"train": mask},
                  config=config, split_stats={"train": utility.image_stats(clean, prot)},
                  extra={"surrogate": "small_cnn", "rounds": 3, "stopped_early": True,
                         "final_surrogate_accuracy": 0.99, "generator_seconds": 12.5})
  n = 8
  np.savez(wd.path(workdir, wd.PREVIEW), clean=clean[:n], protected=prot[:n],
           noise=(prot[:n].astype(np.int16) - clean[:n]).astype(np.int8), mask=mask[:n],
           saliency=rng.random(clean[:n].shape).astype(np.float32) * mask[:n],
           labels=ds.splits["train"].labels[:n])
  with open(wd.path(workdir, wd.METRICS), "w", encoding="utf-8") as f:
    for r in range(1, 4):
      f.write(json.dumps({"round": r, "accuracy": 0.5 + 0.16 * r, "train_loss": 1.0 / r,
                          "train_accuracy": 0.6 + 0.1 * r, "frac_masked": 0.1 * r,
                          "frac_nonzero": 0.09 * r, "linf": EPS_UINT8 / 255,
                          "seconds": 2.0}) + "\n")


def _run(epochs: int, final_acc: float, rng: np.random.Generator) -> dict:
  acc = list(np.linspace(0.5, final_acc, epochs) + rng.normal(0, 0.01, epochs))
  history = {"epoch": list(range(1, epochs + 1)), "train_loss": list(np.linspace(1, 0.2, epochs)),
             "val_auc": acc, "val_acc": acc, "test_auc": [min(a + 0.05, 1.0) for a in acc],
             "test_acc": acc}
  return {"history": history,
          "last": {"epoch": epochs, "auc": history["test_auc"][-1], "acc": acc[-1]},
          "best_val": {"epoch": epochs, "auc": history["test_auc"][-1], "acc": acc[-1],
                       "val_auc": acc[-1]}}


def _evaluation_outputs(workdir: str, rng: np.random.Generator) -> None:
  """results.json / curves.json as salm_jax.evaluation writes them."""
  rows, curves, epochs = [], [], 6
  for arch in ARCHS:
    for spec in DEFENSES:
      clean, prot = _run(epochs, 0.9, rng), _run(epochs, 0.55, rng)
      summary = lambda run: {"last": run["last"], "best_val": run["best_val"], "seconds": 1.0}
      rows.append({"arch": arch, "defense": spec, "poison_fraction": 1.0,
                   "clean": summary(clean), "protected": summary(prot),
                   "diagnostic": {"split": "train", "clean": {"acc": 0.9, "auc": 0.95},
                                  "protected": {"acc": 0.88, "auc": 0.94},
                                  "agreement": 0.97, "delta_acc": -0.02,
                                  "delta_auc": -0.01}})
      for kind, run, frac in (("clean", clean, None), ("protected", prot, 1.0)):
        curves.append({"arch": arch, "defense": spec, "victim": kind, "poison_fraction": frac,
                       **run["history"]})
  results = {"dataset": "phantom", "task": "binary-class", "num_classes": 2,
             "perturbed_splits": ["train"], "rows": rows, "curves": curves,
             "utility": {"train": {"n_images": 48, "n_changed_images": 47, "linf": 0.03,
                                   "linf_uint8": 8, "frac_changed": 0.1, "psnr": 33.0,
                                   "ssim": 0.95}},
             "settings": {"epochs": epochs, "batch_size": 128, "lr": 0.001,
                          "milestones": [0.5, 0.75], "gamma": 0.1, "archs": list(ARCHS),
                          "defenses": list(DEFENSES), "poison_fractions": [1.0]},
             "seconds": 1.0}
  evaluation.write_results(evaluation.json_safe(results), wd.path(workdir, wd.EVALUATION))


def sweep_table() -> dict:
  rows = []
  for v in (0.01, 0.05, 0.1, 0.5, 1.0):
    rows.append({"value": v, "seed": 0, "rounds": 3, "final_surrogate_accuracy": 0.99,
                 "psnr": 45.0 - 10 * v ** 0.5, "ssim": 0.99 - 0.1 * v, "frac_changed": v,
                 "linf_uint8": 8,
                 "results": {a: {"clean": {"acc_last": 0.9, "auc_last": 0.95, "acc_best": 0.91,
                                           "auc_best": 0.96},
                                 "protected": {"acc_last": 0.9 - (0.2 + 0.1 * i) * v ** 0.3,
                                               "auc_last": 0.6, "acc_best": 0.6,
                                               "auc_best": 0.6}} for i, a in enumerate(ARCHS)}})
  rows[2]["results"]["resnet18"]["protected"]["acc_last"] = None  # a failed point
  return {"parameter": "noise.mask_ratio", "seeds": [0], "rows": rows,
          "curve": sweep.curve(rows)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """A workdir reported twice: after protect only, then with evaluation and sweep added."""
  workdir = str(tmp_path_factory.mktemp("workdir"))
  rng = np.random.default_rng(0)
  _protect_outputs(workdir, rng)
  stale = wd.path(workdir, wd.REPORT, "figures", "sweep.png")  # from an earlier report
  atomic.write_bytes(stale, b"not a png")
  report.build_report(workdir)
  protect_only = {"md": _read(wd.path(workdir, wd.REPORT, "index.md")),
                  "figures": sorted(os.listdir(wd.path(workdir, wd.REPORT, "figures")))}
  _evaluation_outputs(workdir, rng)
  atomic.write_json(wd.path(workdir, wd.SWEEP, "table.json"), sweep_table())
  index = report.build_report(workdir)
  return workdir, index, protect_only


@pytest.fixture(scope="module")
def full_workdir(built):
  return built[:2]


def _read(path: str) -> str:
  with open(path, encoding="utf-8") as f:
    return f.read()


def check_png(path: str, min_side: int = 150) -> np.ndarray:
  """A readable PNG of sensible size that is not one flat colour."""
  img = matplotlib.image.imread(path)
  assert img.ndim == 3 and img.shape[2] in (3, 4), img.shape
  assert min(img.shape[:2]) >= min_side, (path, img.shape)
  assert img[..., :3].std() > 0.02, f"{path} looks blank"
  return img


def test_full_report_has_every_section_and_figure(full_workdir):
  workdir, index = full_workdir
  assert index == wd.path(workdir, wd.REPORT, "index.html")
  html_text, md = _read(index), _read(wd.path(workdir, wd.REPORT, "index.md"))
  for name, heading in SECTIONS.items():
    assert heading in md, f"section {name} missing from index.md"
    assert heading in html_text, f"section {name} missing from index.html"
  figs = sorted(os.listdir(wd.path(workdir, wd.REPORT, "figures")))
  assert figs == ["generator.png", "preview.png", "sweep.png", "utility.png", "victim_acc.png",
                  "victim_auc.png"]
  for name in figs:
    assert f'src="figures/{name}"' in html_text and f"](figures/{name})" in md
    check_png(wd.path(workdir, wd.REPORT, "figures", name))
  for arch in ARCHS:
    for spec in DEFENSES:
      assert arch in md and spec in md


def test_html_is_escaped_and_self_contained(full_workdir):
  _, index = full_workdir
  text = _read(index)
  assert "<script>" not in text
  assert "&lt;script&gt;" in text
  assert text.startswith("<!DOCTYPE html>") and "<style>" in text
  assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere


def test_matrix_shows_protected_and_clean_accuracy(full_workdir):
  workdir, _ = full_workdir
  md = _read(wd.path(workdir, wd.REPORT, "index.md"))
  results = json.loads(_read(wd.path(workdir, wd.DONE_EVALUATE)))
  r = results["rows"][0]
  cell = f"{r['protected']['last']['acc']:.3f} ({r['clean']['last']['acc']:.3f})"
  assert f"| {r['arch']} | {cell} |" in md


def test_protect_only_workdir_has_only_its_sections(built):
  md = built[2]["md"]
  for name, heading in SECTIONS.items():
    assert (heading in md) == (name in PROTECT_ONLY), name
  # Figures of sections the workdir does not have (an earlier sweep.png) do not linger.
  assert built[2]["figures"] == ["generator.png", "preview.png", "utility.png"]


def test_missing_manifest_says_run_protect_first(tmp_path):
  with pytest.raises(FileNotFoundError, match="run launch.protect first"):
    report.build_report(str(tmp_path))


def test_plot_sweep_hand_made_table(tmp_path):
  path = figures.plot_sweep(sweep_table(), str(tmp_path / "sweep.png"))
  img = check_png(path)
  assert img.shape[1] > img.shape[0]  # two panels side by side
  with pytest.raises(ValueError, match="no points"):
    figures.plot_sweep({"parameter": "noise.mask_ratio", "curve": []}, str(tmp_path / "x.png"))


def test_plot_utility_bars_and_histograms(tmp_path):
  stats = {"train": {"psnr": 35.0, "ssim": 0.97, "frac_changed": 0.1, "linf_uint8": 8},
           "val": {"psnr": None, "ssim": 1.0, "frac_changed": 0.0, "linf_uint8": 0}}
  check_png(figures.plot_utility(stats, str(tmp_path / "bars.png")))
  rng = np.random.default_rng(0)
  per_image = {"train": {"psnr": np.r_[rng.normal(35, 1, 50), np.inf],
                         "ssim": rng.uniform(0.9, 1, 51), "frac_changed": rng.uniform(0, .2, 51)}}
  check_png(figures.plot_utility(per_image, str(tmp_path / "hist.png")))


def test_plot_preview_rgb_and_bad_input(tmp_path):
  rng = np.random.default_rng(0)
  clean = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  noise = rng.integers(-4, 5, (3, 16, 16, 3)).astype(np.int8)
  preview = {"clean": clean, "noise": noise, "mask": noise.any(-1),
             "protected": np.clip(clean + noise.astype(np.int16), 0, 255).astype(np.uint8),
             "saliency": rng.random((3, 16, 16)), "labels": np.array([[0, 1], [1, 1], [0, 0]])}
  check_png(figures.plot_preview(preview, str(tmp_path / "rgb.png"), epsilon_uint8=4))
  del preview["mask"]
  with pytest.raises(ValueError, match="mask"):
    figures.plot_preview(preview, str(tmp_path / "bad.png"))


def test_launch_report_main_prints_the_path(monkeypatch, capsys, tmp_path):
  from absl import flags
  from launch import report as launch_report
  calls = []
  monkeypatch.setattr(launch_report.report, "build_report",
                      lambda w: calls.append(w) or f"{w}/report/index.html")
  flags.FLAGS(["salm-report", f"--workdir={tmp_path}"])
  try:
    launch_report.main([])
  finally:
    flags.FLAGS.unparse_flags()
  assert calls == [str(tmp_path)]
  assert capsys.readouterr().out.strip() == f"Report: {tmp_path}/report/index.html"
