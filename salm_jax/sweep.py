"""Grid sweeps over one config field, over seeds: the mask-ratio ablation.

Each (value, seed) point is a full protect + evaluate run in its own
sub-workdir, `<workdir>/sweep/points/<i>_<value>/seed<k>/`, so a sweep that is
stopped resumes point by point: finished points are read back, a point cut
short resumes from its generator checkpoint. Seeds are the outer loop, so a
sweep cut short has whole curves for its first seeds. Seed k sets the noise
and the victims' initialization; the clean victims of a seed are trained once
and reused at every value (`sweep/clean/seed<k>.json`).

The result is `sweep/table.json` (one row per point, and `curve`: one entry
per value, averaged over the seeds), `sweep/table.md` and `sweep/sweep.png`.
"""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from salm_jax import atomic
from salm_jax import evaluation
from salm_jax import figures
from salm_jax import protect as protect_lib
from salm_jax import terminal
from salm_jax import workdir as wd

TABLE = os.path.join(wd.SWEEP, "table.json")
_STATS = ("psnr", "ssim", "ssim_min", "frac_changed", "frac_changed_max", "linf_uint8")


def default_config() -> ml_collections.ConfigDict:
  """The `config.sweep` block: the mask-ratio ablation, 1.0 being EM."""
  return ml_collections.ConfigDict(dict(
      parameter="noise.mask_ratio",   # dotted config field the sweep varies
      grid=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),  # its values ('values' is a ConfigDict method)
      seeds=(0,),                     # noise and victim seeds, each a whole curve
      evaluate=True,                  # train victims at every point
  ))


def point_config(config: ml_collections.ConfigDict, parameter: str, value,
                 seed: int | None = None):
  """A copy of `config` with the dotted field `parameter` set to `value` (and the seed)."""
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    node = cfg
    parts = parameter.split(".")
    for part in parts[:-1]:
      if part not in node:
        raise ValueError(f"sweep.parameter {parameter!r}: config has no field {part!r}.")
      node = node[part]
    if parts[-1] not in node:
      raise ValueError(f"sweep.parameter {parameter!r}: config has no field {parts[-1]!r}.")
    node[parts[-1]] = value
    if seed is not None:
      cfg.seed = cfg.evaluation.seed = int(seed)
  return cfg


def _check(sweep: ml_collections.ConfigDict) -> tuple[list, list[int]]:
  values, seeds = list(sweep.grid), list(sweep.get("seeds", (0,)))
  if not values:
    raise ValueError("config.sweep.grid is empty: nothing to sweep.")
  if not seeds or len(set(seeds)) != len(seeds) or not all(
      isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
    raise ValueError(f"config.sweep.seeds must be distinct non-negative integers; got {seeds}.")
  return values, seeds


def run_sweep(config: ml_collections.ConfigDict, workdir: str, *, overwrite: bool = False,
              progress: bool = True) -> dict:
  """Runs every (value, seed) point of `config.sweep`, then writes the table and the plot."""
  parameter = config.sweep.parameter
  values, seeds = _check(config.sweep)
  wd.start_stage(workdir, config, done_file=TABLE, outputs=(wd.SWEEP,), overwrite=overwrite,
                 config_file=os.path.join(wd.SWEEP, "config.json"))
  rows, total = [], len(values) * len(seeds)
  for seed in seeds:
    clean_path = wd.path(workdir, wd.SWEEP, "clean", f"seed{seed}.json")
    clean_runs = wd.read_json(clean_path) if os.path.exists(clean_path) else {}
    for i, value in enumerate(values):
      point_dir = wd.path(workdir, wd.SWEEP, "points", f"{i:02d}_{value}", f"seed{seed}")
      terminal.say("sweep     point %d/%d: %s = %s, seed %d", len(rows) + 1, total, parameter,
                   value, seed)
      cfg = point_config(config, parameter, value, seed)
      rows.append(_run_point(cfg, point_dir, value, seed, progress, clean_runs))
      if clean_runs:
        atomic.write_json(clean_path, clean_runs)
  table = {"parameter": parameter, "seeds": seeds, "rows": rows, "curve": curve(rows)}
  atomic.write_text(wd.path(workdir, wd.SWEEP, "table.md"), table_markdown(table))
  figures.plot_sweep(table, wd.path(workdir, wd.SWEEP, "sweep.png"))
  atomic.write_json(wd.path(workdir, TABLE), table)  # last: marks the sweep done
  return table


def _run_point(cfg, point_dir: str, value, seed: int, progress: bool, clean_runs: dict) -> dict:
  """Protects (and evaluates) one point, or reads back what a finished point wrote."""
  if not os.path.exists(os.path.join(point_dir, wd.DONE_PROTECT)):
    protect_lib.protect(cfg, point_dir, progress=progress)
  manifest = wd.read_json(os.path.join(point_dir, wd.DONE_PROTECT))
  stats = next(iter(manifest["split_stats"].values()))
  row = {"value": value, "seed": seed, "rounds": manifest.get("rounds"),
         "final_surrogate_accuracy": manifest.get("final_surrogate_accuracy"),
         "generator_seconds": manifest.get("generator_seconds"),
         **{k: stats.get(k) for k in _STATS}}
  if cfg.sweep.get("evaluate", True):
    results_path = os.path.join(point_dir, wd.DONE_EVALUATE)
    if os.path.exists(results_path):
      results = wd.read_json(results_path)
    else:
      results = evaluation.run_evaluation(cfg, point_dir, progress=progress,
                                          clean_runs=clean_runs)
    row["results"] = _per_arch(results)
  return row


def _per_arch(results: dict) -> dict:
  """{arch: {'clean'|'protected': {acc_last, auc_last, acc_best, auc_best}}} for the first
  defense at the largest poison fraction: the plain 'does protection hold' number."""
  rows = results["rows"]
  first_defense = rows[0]["defense"]
  top = max(r["poison_fraction"] for r in rows)
  out = {}
  for r in rows:
    if r["defense"] == first_defense and r["poison_fraction"] == top:
      out[r["arch"]] = {kind: {"acc_last": r[kind]["last"]["acc"], "auc_last": r[kind]["last"]["auc"],
                               "acc_best": r[kind]["best_val"]["acc"],
                               "auc_best": r[kind]["best_val"]["auc"]}
                        for kind in ("clean", "protected")}
  return out


def curve(rows: list[dict]) -> list[dict]:
  """One entry per swept value: the seeds' victims and distortion, averaged.

  `zoo_auc` is each seed's mean over the victims, then mean ± std over the
  seeds; `worst_auc` is the highest victim's seed-mean AUC (the victim the
  protection holds least), `clean_zoo_auc` the same victims trained on clean
  data. Distortion is the mean over seeds, except `ssim_min` (the lowest
  image of any seed), `frac_changed_max` (the most-changed image) and L∞.
  """
  out = []
  for value in dict.fromkeys(r["value"] for r in rows):
    group = [r for r in rows if r["value"] == value]
    entry = {"value": value, "seeds": [r["seed"] for r in group],
             "generator_seconds": _mean(r.get("generator_seconds") for r in group),
             **{k: _mean(r.get(k) for r in group) for k in ("psnr", "ssim", "frac_changed")},
             "ssim_min": _lowest(r.get("ssim_min") for r in group),
             "frac_changed_max": _highest(r.get("frac_changed_max") for r in group),
             "linf_uint8": max((r["linf_uint8"] for r in group
                                if r.get("linf_uint8") is not None), default=None)}
    archs = sorted({a for r in group for a in r.get("results", {})})
    if archs:
      entry.update(_victims(group, archs))
    out.append(entry)
  return out


def _victims(group: list[dict], archs: list[str]) -> dict:
  """Zoo means (± std over seeds), the worst victim, and each victim's mean AUC."""
  score = lambda r, a, who, m: r["results"].get(a, {}).get(who, {}).get(m)
  per_seed = lambda who, m: [_mean(score(r, a, who, m) for a in archs) for r in group]
  per_arch = {a: _mean(score(r, a, "protected", "auc_last") for r in group) for a in archs}
  worst = max(archs, key=lambda a: -np.inf if per_arch[a] is None else per_arch[a])
  return {"archs": archs,
          "zoo_auc": _mean(per_seed("protected", "auc_last")),
          "zoo_auc_std": _std(per_seed("protected", "auc_last")),
          "zoo_acc": _mean(per_seed("protected", "acc_last")),
          "clean_zoo_auc": _mean(per_seed("clean", "auc_last")),
          "worst_auc": per_arch[worst], "worst_arch": worst, "auc": per_arch}


def _finite(xs) -> list[float]:
  return [float(x) for x in xs if x is not None and np.isfinite(x)]


def _mean(xs):
  xs = _finite(xs)
  return float(np.mean(xs)) if xs else None


def _std(xs):
  xs = _finite(xs)
  return float(np.std(xs, ddof=1)) if len(xs) > 1 else None


def _lowest(xs):
  xs = _finite(xs)
  return min(xs) if xs else None


def _highest(xs):
  xs = _finite(xs)
  return max(xs) if xs else None


def table_markdown(table: dict) -> str:
  """The curve as a Markdown table, one line per swept value."""
  points = table["curve"]
  archs = sorted({a for p in points for a in p.get("auc", {})})
  head = [table["parameter"], "seeds", "zoo AUC", "worst victim AUC", "zoo ACC", "clean zoo AUC",
          "PSNR (dB)", "SSIM mean / lowest", "pixels changed mean / most", "L∞ (uint8)",
          "generation (s)"] + [f"{a} AUC" for a in archs]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for p in points:
    cells = [p["value"], len(p["seeds"]), _pm(p.get("zoo_auc"), p.get("zoo_auc_std")),
             f"{_fmt(p.get('worst_auc'))} ({p.get('worst_arch', '–')})", p.get("zoo_acc"),
             p.get("clean_zoo_auc"), _fmt(p.get("psnr"), 2),
             f"{_fmt(p.get('ssim'))} / {_fmt(p.get('ssim_min'))}",
             f"{_fmt(p.get('frac_changed'), 4)} / {_fmt(p.get('frac_changed_max'), 4)}",
             p.get("linf_uint8"), _fmt(p.get("generator_seconds"), 0)]
    cells += [p.get("auc", {}).get(a) for a in archs]
    lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
  return "\n".join(lines) + "\n"


def _pm(mean, std) -> str:
  return _fmt(mean) + ("" if std is None else f" ± {std:.3f}")


def _fmt(x, digits: int = 3) -> str:
  if isinstance(x, float):
    return f"{x:.{digits}f}"
  return "–" if x is None else str(x)
