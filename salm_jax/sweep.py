"""Grid sweeps over one config field (the mask-ratio ablation first).

Each point is a full protect (+ evaluate) run in its own sub-workdir,
`<workdir>/sweep/points/<i>_<value>`, so a sweep that is stopped resumes
point by point: finished points are read back, not recomputed. The rows are
aggregated into `sweep/table.json`, `sweep/table.md` and `sweep/sweep.png`.
"""
from __future__ import annotations

import os

import ml_collections

from salm_jax import atomic
from salm_jax import evaluation
from salm_jax import figures
from salm_jax import protect as protect_lib
from salm_jax import terminal
from salm_jax import workdir as wd

TABLE = os.path.join(wd.SWEEP, "table.json")


def point_config(config: ml_collections.ConfigDict, parameter: str, value):
  """A copy of `config` with the dotted field `parameter` set to `value` (type-checked)."""
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
  return cfg


def run_sweep(config: ml_collections.ConfigDict, workdir: str, *, overwrite: bool = False,
              progress: bool = True) -> dict:
  """Runs every point of `config.sweep`, then writes the table and the plot."""
  parameter, values = config.sweep.parameter, list(config.sweep.grid)
  if not values:
    raise ValueError("config.sweep.grid is empty: nothing to sweep.")
  wd.start_stage(workdir, config, done_file=TABLE, outputs=(wd.SWEEP,), overwrite=overwrite,
                 config_file=os.path.join(wd.SWEEP, "config.json"))
  rows = []
  for i, value in enumerate(values):
    point_dir = wd.path(workdir, wd.SWEEP, "points", f"{i:02d}_{value}")
    cfg = point_config(config, parameter, value)
    terminal.say("sweep     point %d/%d: %s = %s", i + 1, len(values), parameter, value)
    rows.append(_run_point(cfg, point_dir, value, progress))
  table = {"parameter": parameter, "rows": rows}
  atomic.write_text(wd.path(workdir, wd.SWEEP, "table.md"), table_markdown(table))
  figures.plot_sweep(table, wd.path(workdir, wd.SWEEP, "sweep.png"))
  atomic.write_json(wd.path(workdir, TABLE), table)  # last: marks the sweep done
  return table


def _run_point(cfg, point_dir: str, value, progress: bool) -> dict:
  """Protects (and evaluates) one point, or reads back what a finished point wrote."""
  if not os.path.exists(os.path.join(point_dir, wd.DONE_PROTECT)):
    protect_lib.protect(cfg, point_dir, progress=progress)
  manifest = wd.read_json(os.path.join(point_dir, wd.DONE_PROTECT))
  stats = next(iter(manifest["split_stats"].values()))
  row = {"value": value, "rounds": manifest.get("rounds"),
         "final_surrogate_accuracy": manifest.get("final_surrogate_accuracy"),
         **{k: stats.get(k) for k in ("psnr", "ssim", "frac_changed", "linf_uint8")}}
  if cfg.sweep.get("evaluate", True):
    results_path = os.path.join(point_dir, wd.DONE_EVALUATE)
    if os.path.exists(results_path):
      results = wd.read_json(results_path)
    else:
      results = evaluation.run_evaluation(cfg, point_dir, progress=progress)
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


def table_markdown(table: dict) -> str:
  archs = sorted({a for r in table["rows"] for a in r.get("results", {})})
  head = [table["parameter"], "rounds", "surrogate acc", "PSNR", "SSIM", "pixels changed"]
  head += [f"{a} {k} ACC" for a in archs for k in ("clean", "protected")]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in table["rows"]:
    cells = [r["value"], r["rounds"], r["final_surrogate_accuracy"], r["psnr"], r["ssim"],
             r["frac_changed"]]
    cells += [r.get("results", {}).get(a, {}).get(k, {}).get("acc_last") for a in archs
              for k in ("clean", "protected")]
    lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
  return "\n".join(lines) + "\n"


def _fmt(x) -> str:
  if isinstance(x, float):
    return f"{x:.3f}" if abs(x) < 1000 else f"{x:.0f}"
  return "–" if x is None else str(x)
