"""`evaluate`: does the protection hold, and are the images still usable?

For every architecture × defense of the config, one victim is trained on the
clean data and one on the protected data (for each poison fraction p, a
random p of the training images protected, the rest clean), with the same
initialization, and both are tested on the clean test split. Protection works
when the protected victim's test ACC / AUC collapse while the clean one's do
not. Beside that: the distortion of the perturbed splits
(`utility.image_stats`) and the diagnostic utility of each clean victim on the
protected vs clean copies of the perturbed images.

`run_evaluation` reads a workdir's `protected/` folder and writes
`evaluation/results.json`, `results.md` and `curves.json` (per-epoch test
metrics for the report's learning-curve figure).
"""
from __future__ import annotations

import concurrent.futures
import math
import os
import time
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np

from salm_jax import atomic, run_log, workdir as workdir_lib
from salm_jax.data.dataset import SPLITS, Dataset
from salm_jax.evaluation import defenses, poisoning, utility, victim


def default_config() -> ml_collections.ConfigDict:
  """The `config.evaluation` block: MedMNIST's victim recipe plus what to sweep."""
  cfg = victim.victim_config()
  cfg.archs = ("small_cnn",)
  cfg.defenses = ("none",)           # spec strings, see salm_jax.evaluation.defenses
  cfg.poison_fractions = (1.0,)      # fraction p of the training set protected
  cfg.diagnostic = True              # diagnostic utility of the clean victims
  cfg.seed = 0
  cfg.parallel_victims = 2           # victims of one arch × defense trained at once (threads)
  return cfg


def perturbed_splits(clean: Dataset, protected: Dataset) -> list[str]:
  """The splits whose images differ; checks the two datasets hold the same examples."""
  if (clean.task, clean.num_classes) != (protected.task, protected.num_classes):
    raise ValueError(f"clean ({clean.task}, {clean.num_classes} classes) and protected "
                     f"({protected.task}, {protected.num_classes} classes) datasets differ.")
  out = []
  for s in SPLITS:
    c, p = clean.splits[s], protected.splits[s]
    if c.images.shape != p.images.shape or not np.array_equal(c.labels, p.labels):
      raise ValueError(f"split {s!r}: the protected dataset ({protected.source}) does not hold "
                       f"the clean dataset's ({clean.source}) examples: images "
                       f"{p.images.shape} vs {c.images.shape}, or different labels.")
    if not np.array_equal(c.images, p.images):
      out.append(s)
  return out


def _summary(run: dict) -> dict:
  return {"last": run["last"], "best_val": run["best_val"], "seconds": round(run["seconds"], 2)}


def _curve(run: dict, arch: str, spec: str, victim_kind: str, fraction: float | None) -> dict:
  cols = ("epoch", "train_loss", "val_auc", "val_acc", "test_auc", "test_acc")
  return {"arch": arch, "defense": spec, "victim": victim_kind, "poison_fraction": fraction,
          **{c: [h[c] for h in run["history"]] for c in cols}}


def _train(dataset_splits, ds: Dataset, cfg, arch, spec, key, progress, desc,
           tensorboard_dir: str | None) -> dict:
  """One victim; its per-epoch scalars go to `<tensorboard_dir>/<desc>` when given."""
  train, val, test = dataset_splits
  writer = None if tensorboard_dir is None else run_log.scalar_writer(
      os.path.join(tensorboard_dir, run_log.run_name(desc)), "victim", "epoch")
  try:
    return victim.train_victim(train, val, test, task=ds.task, num_classes=ds.num_classes,
                               arch=arch, cfg=cfg, defense=spec, key=key, progress=progress,
                               desc=desc, on_epoch=writer)
  finally:
    if writer:
      writer.close()


def _evaluate_pair(clean, protected, cfg, arch, spec, key, diag_split, progress,
                   tensorboard_dir=None, clean_run: dict | None = None) -> tuple:
  """Clean victim and one protected victim per poison fraction (same init key).

  The victims are independent, so up to `cfg.parallel_victims` train at once
  in threads: a small model's steps leave CPU cores idle (two small-CNN
  victims took 30-50% less time side by side on 2 cores), and the results
  are the same as one after the other. Each draws its own progress bar.
  `clean_run` is the clean victim of an earlier call with the same key and
  data (a sweep reuses it at every point); it is then not trained again.
  """
  k_init, k_mix = jax.random.split(key)
  jobs = [] if clean_run else [((clean.train, clean.val, clean.test), f"{arch}|{spec}|clean")]
  for i, frac in enumerate(cfg.poison_fractions):
    train, _ = poisoning.mix_poisoned(clean.train, protected.train, frac,
                                      jax.random.fold_in(k_mix, i))
    jobs.append(((train, protected.val, clean.test), f"{arch}|{spec}|p={frac:g}"))
  workers = min(int(cfg.get("parallel_victims", 1)), len(jobs))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    futures = [pool.submit(_train, splits, clean, cfg, arch, spec, k_init, progress, desc,
                           tensorboard_dir)
               for splits, desc in jobs]
    runs = [f.result() for f in futures]
  run, pruns = (clean_run, runs) if clean_run else (runs[0], runs[1:])
  rows, curves = [], [_curve(run, arch, spec, "clean", None)]
  diag = None
  if cfg.get("diagnostic", True) and diag_split and "model" in run:
    c, p = clean.splits[diag_split], protected.splits[diag_split]
    diag = {"split": diag_split, **utility.diagnostic_utility(
        run["model"], c.images, p.images, c.labels, clean.task, cfg.eval_batch_size)}
  for frac, prun in zip(cfg.poison_fractions, pruns):
    rows.append({"arch": arch, "defense": spec, "poison_fraction": float(frac),
                 "clean": _summary(run), "protected": _summary(prun), "diagnostic": diag})
    curves.append(_curve(prun, arch, spec, "protected", float(frac)))
    logging.info("%s | %s | p=%g: test ACC clean %.3f -> protected %.3f (last epoch)",
                 arch, spec, frac, run["last"]["acc"], prun["last"]["acc"])
  return rows, curves, run


def evaluate_datasets(clean: Dataset, protected: Dataset, cfg: ml_collections.ConfigDict, *,
                      key: jax.Array, progress: bool = True,
                      tensorboard_dir: str | None = None,
                      clean_runs: dict[str, dict] | None = None) -> dict:
  """Victims on clean vs protected data for every arch × defense (× poison fraction).

  Victims validate on the val split the trainer has (the protected dataset's)
  and are tested on the clean test split. Returns a JSON-safe dict with
  'rows' (one per arch × defense × p), 'curves', 'utility' (image_stats per
  perturbed split) and the settings; `results_markdown` renders it. With
  `tensorboard_dir`, each victim writes its per-epoch metrics there (one run each).
  """
  defenses.check_all(cfg.defenses)
  if int(cfg.get("parallel_victims", 1)) < 1:
    raise ValueError(f"evaluation.parallel_victims must be >= 1, got {cfg.parallel_victims}.")
  perturbed = perturbed_splits(clean, protected)
  if not perturbed:
    logging.warning("The protected dataset equals the clean one: nothing was perturbed.")
  diag_split = "train" if "train" in perturbed else (perturbed[0] if perturbed else None)
  t0 = time.time()
  rows, curves = [], []
  for ai, arch in enumerate(cfg.archs):
    for di, spec in enumerate(cfg.defenses):
      k = jax.random.fold_in(jax.random.fold_in(key, ai), di)
      cached = clean_run_key(ai, arch, spec)
      r, c, run = _evaluate_pair(clean, protected, cfg, arch, spec, k, diag_split, progress,
                                 tensorboard_dir, (clean_runs or {}).get(cached))
      if clean_runs is not None:
        clean_runs[cached] = {f: run[f] for f in ("last", "best_val", "seconds", "history")}
      rows += r
      curves += c
  return json_safe({
      "dataset": clean.name, "task": clean.task, "num_classes": clean.num_classes,
      "perturbed_splits": perturbed,
      "utility": {s: utility.image_stats(clean.splits[s].images, protected.splits[s].images)
                  for s in perturbed},
      "rows": rows, "curves": curves,
      "settings": {k: cfg[k] for k in ("epochs", "batch_size", "lr", "milestones", "gamma",
                                       "archs", "defenses", "poison_fractions")},
      "seconds": round(time.time() - t0, 2),
  })


def clean_run_key(arch_index: int, arch: str, spec: str) -> str:
  """Which clean victim: its place in `archs` sets its key, so the place is part of it."""
  return f"{arch_index}|{arch}|{spec}"


def json_safe(obj: Any) -> Any:
  """Plain JSON types; NaN and inf become None (an undefined AUC, an unchanged image's PSNR)."""
  if isinstance(obj, dict):
    return {str(k): json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [json_safe(v) for v in obj]
  if isinstance(obj, (np.generic, np.ndarray)):
    return json_safe(obj.tolist())
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def _fmt(x, digits=3) -> str:
  return "n/a" if x is None else f"{x:.{digits}f}"


def results_markdown(results: dict) -> str:
  """The results as Markdown: victims, diagnostic utility, distortion."""
  lines = [f"# Victim evaluation: {results['dataset']} ({results['task']})", "",
           "Test ACC / AUC of victims trained on clean vs protected training data "
           f"({results['settings']['epochs']} epochs); 'best-val' is the epoch of best "
           "validation AUC.", "",
           "| arch | defense | p | clean ACC last | clean AUC last | clean ACC best-val | "
           "clean AUC best-val | protected ACC last | protected AUC last | "
           "protected ACC best-val | protected AUC best-val |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in results["rows"]:
    vals = [_fmt(r[v][w][m]) for v in ("clean", "protected") for w in ("last", "best_val")
            for m in ("acc", "auc")]
    lines.append(f"| {r['arch']} | {r['defense']} | {r['poison_fraction']:g} | "
                 + " | ".join(vals) + " |")
  diag = [r for r in results["rows"] if r.get("diagnostic")]
  if diag:
    lines += ["", "## Diagnostic utility", "",
              "A victim trained on clean data, on clean vs protected copies of the "
              f"{diag[0]['diagnostic']['split']} images.", "",
              "| arch | defense | ACC clean | ACC protected | AUC clean | AUC protected | "
              "agreement |", "|---|---|---|---|---|---|---|"]
    seen = set()
    for r in diag:
      if (r["arch"], r["defense"]) in seen:
        continue
      seen.add((r["arch"], r["defense"]))
      d = r["diagnostic"]
      lines.append(f"| {r['arch']} | {r['defense']} | {_fmt(d['clean']['acc'])} | "
                   f"{_fmt(d['protected']['acc'])} | {_fmt(d['clean']['auc'])} | "
                   f"{_fmt(d['protected']['auc'])} | {_fmt(d['agreement'])} |")
  lines += ["", "## Distortion of the perturbed splits", "",
            "| split | images | changed | L∞ (uint8) | pixels changed | PSNR (dB) | SSIM |",
            "|---|---|---|---|---|---|---|"]
  for s, u in results["utility"].items():
    lines.append(f"| {s} | {u['n_images']} | {u['n_changed_images']} | {u['linf_uint8']} | "
                 f"{_fmt(u['frac_changed'], 4)} | {_fmt(u['psnr'], 2)} | {_fmt(u['ssim'], 4)} |")
  return "\n".join(lines) + "\n"


def write_results(results: dict, out_dir: str) -> None:
  """results.json, results.md and curves.json in `out_dir`, each written atomically."""
  atomic.write_json(f"{out_dir}/curves.json", results["curves"])
  atomic.write_text(f"{out_dir}/results.md", results_markdown(results))
  atomic.write_json(f"{out_dir}/results.json", results)  # last: marks the step done


def run_evaluation(config: ml_collections.ConfigDict, workdir: str, *,
                   progress: bool = True, clean_runs: dict[str, dict] | None = None) -> dict:
  """Loads the clean data (`config.dataset`) and `<workdir>/protected`, evaluates, writes.

  `clean_runs`: clean victims to reuse and fill in (`evaluate_datasets`).
  """
  from salm_jax import data  # the data layer pulls in download code; load it only here
  cfg = config.evaluation
  clean = data.load_from_config(config.dataset)
  protected, manifest = data.read_protected(workdir_lib.path(workdir, workdir_lib.PROTECTED))
  tensorboard_dir = None
  if config.get("tensorboard", True) and jax.process_index() == 0:
    tensorboard_dir = workdir_lib.path(workdir, workdir_lib.EVALUATION, "tensorboard")
  results = evaluate_datasets(clean, protected, cfg, key=jax.random.key(cfg.seed),
                              progress=progress and jax.process_index() == 0,
                              tensorboard_dir=tensorboard_dir, clean_runs=clean_runs)
  results["protection"] = json_safe({k: manifest.get(k) for k in
                                     ("method", "epsilon", "mask_ratio", "seed",
                                                     "surrogate")})
  write_results(results, workdir_lib.path(workdir, workdir_lib.EVALUATION))
  return results
