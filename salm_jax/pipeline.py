"""The stages a data owner runs, in order: protect -> evaluate -> report.

`launch/run.py` runs all three; `launch/protect.py`, `launch/evaluate.py` and
`launch/report.py` run one each on the same workdir. A stage whose output is
already complete is refused unless `overwrite` (see `workdir.start_stage`);
`run_all` instead skips finished stages, so rerunning it after a kill picks
up where it stopped.
"""
from __future__ import annotations

import os
import time

import ml_collections
import numpy as np

from salm_jax import evaluation
from salm_jax import protect as protect_lib
from salm_jax import tasks
from salm_jax import terminal
from salm_jax import workdir as wd
from salm_jax.evaluation import verdicts


def evaluate_stage(config: ml_collections.ConfigDict, workdir: str, *, overwrite: bool = False,
                   progress: bool = True) -> dict:
  wd.require(workdir, wd.DONE_PROTECT, "run launch.protect on this workdir first")
  wd.start_stage(workdir, config, done_file=wd.DONE_EVALUATE, outputs=(wd.EVALUATION,),
                 overwrite=overwrite, config_file=os.path.join(wd.EVALUATION, "config.json"))
  return evaluation.run_evaluation(config, workdir, progress=progress)


def report_stage(workdir: str) -> str:
  from salm_jax import report  # matplotlib: only loaded when a report is made
  wd.require(workdir, wd.DONE_PROTECT, "run launch.protect on this workdir first")
  return report.build_report(workdir)


def run_all(config: ml_collections.ConfigDict, workdir: str, *, overwrite: bool = False,
            progress: bool = True) -> dict:
  """Protect, evaluate and report; finished stages are kept unless `overwrite`.

  Each stage ends with one line on the terminal (`terminal.say`); its detail
  goes to the log file.
  """
  start = time.time()
  if overwrite or not os.path.exists(wd.path(workdir, wd.DONE_PROTECT)):
    protect_lib.protect(config, workdir, overwrite=overwrite, progress=progress)
    _say_protected(workdir, time.time() - start)
    overwrite = True  # new noise: the later stages must be redone
  else:
    terminal.say("protect   kept the finished run in %s (--overwrite redoes it)",
                 terminal.display_path(workdir))
  start = time.time()
  if overwrite or not os.path.exists(wd.path(workdir, wd.DONE_EVALUATE)):
    results = evaluate_stage(config, workdir, overwrite=overwrite, progress=progress)
    _say_evaluated(results, time.time() - start)
  else:
    terminal.say("evaluate  kept the finished victims in %s", terminal.display_path(workdir))
  start = time.time()
  report_path = report_stage(workdir)
  terminal.say("report    written in %.0f s", time.time() - start)
  return summarize(workdir, report_path)


def _say_protected(workdir: str, seconds: float) -> None:
  if not os.path.exists(wd.path(workdir, wd.DONE_PROTECT)):
    return  # a process other than the first writes no files
  m = wd.read_json(wd.path(workdir, wd.DONE_PROTECT))
  if m.get("final_surrogate_accuracy") is None:  # a model-free method: no surrogate, no rounds
    terminal.say("protect   noise method %r, model-free, in %.0f s", m.get("method"), seconds)
    return
  terminal.say("protect   %d rounds in %.0f s, surrogate accuracy on x+δ %.3f%s", m["rounds"],
               seconds, m["final_surrogate_accuracy"],
               ", stopped early" if m["stopped_early"] else "")


def _say_evaluated(results: dict, seconds: float) -> None:
  s = results["settings"]
  count = len(s["archs"]) * len(s["defenses"]) * (1 + len(s["poison_fractions"]))
  terminal.say("evaluate  %d victims (%s; defenses: %s) trained %d epochs each in %.0f s",
               count, ", ".join(s["archs"]), ", ".join(s["defenses"]), s["epochs"], seconds)


def summarize(workdir: str, report_path: str) -> dict:
  """The few numbers that show the protection works, read from the workdir's files."""
  manifest = wd.read_json(wd.path(workdir, wd.DONE_PROTECT))
  results = wd.read_json(wd.path(workdir, wd.DONE_EVALUATE))
  split = manifest["perturbed_splits"][0]
  return {
      "protected_file": wd.path(workdir, wd.PROTECTED, manifest["files"]["data"]["name"]),
      "report": report_path,
      "tables": wd.path(workdir, wd.EVALUATION, "results.md"),
      "dataset": manifest["dataset"]["name"], "split": split,
      "utility": manifest["split_stats"][split],
      "chance_accuracy": _chance_accuracy(workdir, manifest),
      "verdict": verdicts.verdict(results),
      "victims": [{"arch": r["arch"], "defense": r["defense"],
                   "poison_fraction": r["poison_fraction"],
                   "clean_acc": r["clean"]["last"]["acc"], "clean_auc": r["clean"]["last"]["auc"],
                   "protected_acc": r["protected"]["last"]["acc"],
                   "protected_auc": r["protected"]["last"]["auc"]} for r in results["rows"]],
  }


def _chance_accuracy(workdir: str, manifest: dict) -> float:
  """Test ACC of always answering the most frequent class (per label for multi-label)."""
  from salm_jax.data import protected  # the data layer: load it only here, as suite.py does
  labels = protected.read_split_labels(wd.path(workdir, wd.PROTECTED), "test")
  if manifest["dataset"]["task"] == tasks.MULTI_LABEL:
    p = labels.mean(0)
    return float(np.maximum(p, 1 - p).mean())
  return float(np.bincount(labels[:, 0]).max() / len(labels))


def _changed_ssim(u: dict) -> str:
  """' (changed images ..., lowest ...)' where some images were left untouched: there the
  mean SSIM counts them as 1.0 and flatters the images that were changed."""
  if u.get("ssim_changed") is None or u.get("n_changed_images") == u.get("n_images"):
    return ""
  return (f" ({u['n_changed_images']} changed images: {_f(u['ssim_changed'])}, lowest "
          f"{_f(u.get('ssim_min'))})")


def summary_text(summary: dict) -> str:
  u, v = summary["utility"], summary["verdict"]
  most = u.get("frac_changed_max")
  lines = [
      f"Protected: {v['word']} ({v['held']} of {len(v['victims'])} victims lost at least half "
      "of their AUC's margin over chance).",
      f"Protected {summary['dataset']} ({summary['split']} split): PSNR {_f(u.get('psnr'))} dB, "
      f"SSIM {_f(u.get('ssim'))}{_changed_ssim(u)}, "
      + (f"at most {100 * most:.1f}% of an image's pixels changed ({100 * u['frac_changed']:.1f}%"
         " on average)" if most is not None else f"{100 * u['frac_changed']:.1f}% of pixels "
                                                  "changed")
      + f", max change {u['linf_uint8']}/255.",
      "Victims trained on each copy, tested on the clean test set (last epoch):",
  ]
  for v in summary["victims"]:
    lines.append(f"  {v['arch']:<12} {v['defense']:<14} trained on clean: ACC {v['clean_acc']:.3f}"
                 f" AUC {_f(v['clean_auc'])}   trained on protected: ACC "
                 f"{v['protected_acc']:.3f} AUC {_f(v['protected_auc'])}")
  if summary.get("chance_accuracy") is not None:
    lines.append(f"  (chance: always predicting the majority class scores ACC "
                 f"{summary['chance_accuracy']:.3f})")
  lines += [f"Protected dataset: {terminal.display_path(summary['protected_file'])}",
            f"Tables:            {terminal.display_path(summary['tables'])}",
            f"Report:            {terminal.display_path(summary['report'])}"]
  return "\n".join(lines)


def _f(x) -> str:
  return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"
