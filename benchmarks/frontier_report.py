"""Tables and the protection-vs-distortion figure from `benchmarks/frontier.py`'s rows.

For each variant: victim test AUC / ACC per architecture (mean ± std over
seeds, last epoch; "(1 seed)" where only one ran), the mean over the victims
that every seed of every variant has, and the distortion of the written
uint8 files (PSNR, SSIM, pixels changed, L∞), with generation time. The
figure plots the zoo-mean AUC against PSNR and against the pixels changed,
one point per variant. `benchmarks/results_page.py` builds docs/RESULTS.md
from the same functions; this command prints the whole of one row file:

  python -m benchmarks.frontier_report --json=/tmp/rows.json --out_md=/tmp/rows.md

`--archs=... --complete` keeps only the variants that have every listed
victim on each seed (the others are named under the tables), so the mean is
over that whole list; `--mark=<variant>` draws a variant as a large star.
"""
from __future__ import annotations

import collections

from absl import app, flags
import numpy as np

from benchmarks import frontier_rows
from salm_jax import atomic
from salm_jax import workdir as wd

_JSON = flags.DEFINE_list("json", None, "Row files written by benchmarks/frontier.py "
                         "(several: e.g. one per seed, run side by side).")
_OUT_MD = flags.DEFINE_string("out_md", None, "Markdown tables (default: print).")
_OUT_PNG = flags.DEFINE_string("out_png", None, "The frontier figure (optional).")
_ARCHS = flags.DEFINE_list("archs", None, "Only these victims (default: every one in the rows).")
_COMPLETE = flags.DEFINE_bool(
    "complete", False, "Only the variants that have every --archs victim on each of their "
    "seeds, so that the zoo mean (table and figure) is over the whole --archs list.")
_MARK = flags.DEFINE_list("mark", [], "Variants drawn as a large star in the figure "
                          "(the default, so that a reader finds it on the frontier).")


_victim = frontier_rows.row_victim  # 'vit_small/patch7' where a run set the ViT's patch


def latest_rows(rows: list[dict]) -> list[dict]:
  """One row per (variant, seed, victim, defense): a later file's row replaces an earlier one.

  A rerun (a control regenerated with the SALM run it reads, on another
  machine) is listed after the first run, and only the rerun is averaged.
  """
  latest = {frontier_rows.row_key(r): r for r in rows}
  return [r for r in rows if latest[frontier_rows.row_key(r)] is r]


def complete_rows(rows: list[dict], archs: list[str]) -> tuple[list[dict], list[str]]:
  """The rows of the variants that have every victim of `archs` on each of their seeds.

  Without it the zoo mean is over the victims that *every* variant has, which
  one small-CNN-only variant shrinks to the small CNN. Returns the kept rows
  and the names left out.
  """
  left_out = [name for name, rs in _by_group(rows).items()
              if not set(archs) <= _victims_on_every_seed(rs)]
  return [r for r in rows if _group(r) not in left_out], left_out


def _by_group(rows: list[dict]) -> dict[str, list[dict]]:
  """Rows by variant; victims trained with a defense are a variant of their own."""
  groups = collections.defaultdict(list)
  for r in rows:
    groups[_group(r)].append(r)
  return groups


def _group(row: dict) -> str:
  """A row's variant, with '[defense]' where its victim was trained with one."""
  defense = row.get("defense", "none")
  return row["variant"] + ("" if defense == "none" else f" [{defense}]")


def summarize(rows: list[dict]) -> dict[str, dict]:
  """variant -> {'archs': {arch: {auc/acc: (mean, std, n)}}, 'zoo': ..., 'distortion': ...}."""
  by_variant = _by_group(rows)
  common = _common_victims(by_variant)
  out = {}
  for name, rs in by_variant.items():
    archs = sorted({_victim(r) for r in rs})
    per_arch = {a: {m: _stats([of(r["last"]) for r in rs if _victim(r) == a])
                    for m, of in _PER_VICTIM.items()} for a in archs}
    seeds = sorted({r["seed"] for r in rs})
    per_seed = {m: [_mean_or_none([r["last"][m] for r in rs
                                   if r["seed"] == s and _victim(r) in common]) for s in seeds]
                for m in ("auc", "acc")}  # None: a seed without the common victims
    zoo = {m: _stats(per_seed[m]) for m in ("auc", "acc")}
    first = {}
    for r in rs:  # one distortion entry per seed (the same file for every arch)
      first.setdefault(r["seed"], r)
    dist = {k: _stats([f["distortion"].get(k) for f in first.values()
                       if f["distortion"].get(k) is not None])
            for k in ("psnr", "ssim", "ssim_changed", "frac_changed", "linf_uint8")}
    lowest = [f["distortion"]["ssim_min"] for f in first.values()
              if f["distortion"].get("ssim_min") is not None]
    dist["ssim_lowest"] = min(lowest) if lowest else None  # the lowest image of any seed
    dist["generator_seconds"] = _stats([f["generator_seconds"] for f in first.values()])
    auc_by_seed = {a: {r["seed"]: r["last"]["auc"] for r in rs if _victim(r) == a} for a in archs}
    out[name] = {"archs": per_arch, "zoo": zoo, "zoo_archs": common, "distortion": dist,
                 "seeds": seeds, "zoo_auc_per_seed": per_seed["auc"],
                 "auc_by_seed": auc_by_seed}
  return out


# What each victim's row gives the tables: its last epoch's test AUC / ACC, its clean val
# AUC (None in rows made before it was recorded), and max(AUC, 1 − AUC), what a victim
# that finds its val AUC below 0.5 and reverses its scores would reach.
_PER_VICTIM = {"auc": lambda last: last["auc"], "acc": lambda last: last["acc"],
               "val_auc": lambda last: last.get("val_auc"),
               "flip_auc": lambda last: max(last["auc"], 1 - last["auc"])}


def _common_victims(by_variant: dict[str, list[dict]]) -> list[str]:
  """The victims that every variant has on each of its seeds: the zoo mean's victims.

  Variants are compared on the same architectures, and seeds on the same
  ones, so a victim that only some runs reached is reported but not averaged.
  """
  sets = [_victims_on_every_seed(rs) for rs in by_variant.values()]
  return sorted(set.intersection(*sets)) if sets else []


def _victims_on_every_seed(rows: list[dict]) -> set[str]:
  """The victims of one variant's rows that every one of its seeds has."""
  seeds = {r["seed"] for r in rows}
  return {a for a in {_victim(r) for r in rows}
          if {r["seed"] for r in rows if _victim(r) == a} == seeds}


def _mean_or_none(values) -> float | None:
  return float(np.mean(values)) if values else None


def _stats(values) -> tuple[float, float, int]:
  v = np.asarray([x for x in values if x is not None], float)
  if not len(v):
    return (float("nan"), float("nan"), 0)
  return (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v))


def _pm(s, digits=3) -> str:
  mean, std, n = s
  if not n:
    return "–"
  return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f} (1 seed)"


def markdown(summary: dict[str, dict]) -> str:
  archs = sorted({a for v in summary.values() for a in v["archs"]})
  head = ("| variant | seeds | PSNR (dB) | SSIM, all images | SSIM, changed images | lowest SSIM "
          "| pixels changed | L∞ (uint8) | generation (s) | zoo mean AUC | zoo mean ACC | "
          + " | ".join(f"{a} AUC" for a in archs) + " |")
  common = next(iter(summary.values()))["zoo_archs"] if summary else []
  lines = [f"Zoo mean over: {', '.join(common)} (the victims every variant has on every seed).",
           "PSNR over the changed images; SSIM per image (changed images and lowest: rows made "
           "since they are recorded, '–' before); pixels changed over all images.",
           "", head, "|" + "---|" * (11 + len(archs))]
  for name, v in summary.items():
    d = v["distortion"]
    lowest = "–" if d["ssim_lowest"] is None else f"{d['ssim_lowest']:.3f}"
    cells = [name, ",".join(map(str, v["seeds"])), _pm(d["psnr"], 2), _pm(d["ssim"]),
             _pm(d["ssim_changed"]), lowest, _pm(d["frac_changed"]), _pm(d["linf_uint8"], 0),
             _pm(d["generator_seconds"], 0), _pm(v["zoo"]["auc"]), _pm(v["zoo"]["acc"])]
    cells += [_pm(v["archs"][a]["auc"]) if a in v["archs"] else "–" for a in archs]
    lines.append("| " + " | ".join(cells) + " |")
  seed_lines = ["", "Zoo-mean AUC of each seed (for paired comparisons):", "",
                "| variant | seeds | zoo mean AUC per seed |", "|---|---|---|"]
  for name, v in summary.items():
    seed_lines.append(f"| {name} | {','.join(map(str, v['seeds']))} | "
                      + " / ".join("–" if a is None else f"{a:.3f}" for a in v["zoo_auc_per_seed"])
                      + " |")
  acc_lines = _per_victim_lines(summary, archs, "acc",
                                "Test ACC per victim (last epoch, mean ± std over seeds):")
  return "\n".join(lines + acc_lines + seed_lines + _victim_seed_lines(summary, archs)
                   + _per_victim_lines(summary, archs, "flip_auc", _FLIP)
                   + _per_victim_lines(summary, archs, "val_auc", _VAL)) + "\n"


_FLIP = ("max(AUC, 1 − AUC) per victim: the test AUC of a victim that notices an AUC below "
         "0.5 on its own clean validation split and reverses its scores (last epoch):")
_VAL = ("Clean validation AUC per victim, last epoch (rows made since it is recorded): the "
        "split to choose a setting on, leaving the test split for reporting:")


def _per_victim_lines(summary: dict[str, dict], archs: list[str], metric: str,
                      caption: str) -> list[str]:
  """One mean ± std table of a per-victim metric; variants with no value at all are left out."""
  lines = ["", caption, "", "| variant | " + " | ".join(archs) + " |",
           "|" + "---|" * (1 + len(archs))]
  for name, v in summary.items():
    cells = [_pm(v["archs"][a][metric]) if a in v["archs"] else "–" for a in archs]
    if any(c != "–" for c in cells):
      lines.append("| " + " | ".join([name] + cells) + " |")
  return lines


def _victim_seed_lines(summary: dict[str, dict], archs: list[str]) -> list[str]:
  """Each victim's AUC per seed: a mean can hide a seed on which a victim escapes."""
  lines = ["", "Test AUC of each victim per seed (seed: AUC):", "",
           "| variant | " + " | ".join(archs) + " |", "|" + "---|" * (1 + len(archs))]
  for name, v in summary.items():
    cells = []
    for a in archs:
      by_seed = v["auc_by_seed"].get(a, {})
      cells.append(" ".join(f"{k}: {auc:.3f}" for k, auc in sorted(by_seed.items()))
                   if by_seed else "–")
    lines.append("| " + " | ".join([name] + cells) + " |")
  return lines


def figure(summary: dict[str, dict], path: str, title: str, mark=(),
           labels: dict[str, str] | None = None) -> None:
  """Zoo-mean AUC against PSNR and against pixels changed, ± std over seeds as error bars.

  The variants in `mark` are drawn as large stars; `labels` names the points
  (default: the variant names); the y label names the victims the mean is over.
  """
  labels = labels or {}
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
  clean = summary.get("clean", {}).get("zoo", {}).get("auc")
  points = [(n, v) for n, v in summary.items() if n != "clean" and v["distortion"]["psnr"][2]]
  colours = plt.get_cmap("tab20" if len(points) > 10 else "tab10")
  for i, (name, v) in enumerate(points):  # one colour and marker per variant, on both axes
    auc, d = v["zoo"]["auc"], v["distortion"]
    marker = "*" if name in mark else "osD^v"[(i // colours.N) % 5]
    for ax, key in zip(axes, ("psnr", "frac_changed")):
      ax.errorbar(d[key][0], auc[0], xerr=d[key][1], yerr=auc[1], fmt=marker, capsize=3,
                  color=colours(i % colours.N),
                  label=labels.get(name, name) if ax is axes[1] else None,
                  markersize=14 if name in mark else 6)
  for ax, xlabel in zip(axes, ("PSNR of the written file (dB)", "fraction of pixels changed")):
    if clean:
      ax.axhline(clean[0], color="gray", ls="--", lw=1, label="clean victims")
    ax.axhline(0.5, color="black", ls=":", lw=1, label="chance (AUC 0.5)")
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
  common = next(iter(summary.values()))["zoo_archs"] if summary else []
  axes[0].set_ylabel("victim test AUC, mean over " + (
      ", ".join(common) if len(common) <= 3 else f"{len(common)} victims"))
  axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  with atomic.atomic_open(path) as f:
    fig.savefig(f, format="png", dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  files = [wd.read_json(p) for p in _JSON.value]
  data = {"machine": files[0]["machine"],
          "rows": latest_rows([r for f in files for r in f["rows"]
                               if not _ARCHS.value or _victim(r) in _ARCHS.value])}
  left_out = []
  if _COMPLETE.value:
    if not _ARCHS.value:
      raise app.UsageError("--complete needs --archs: the victims every kept variant must have.")
    data["rows"], left_out = complete_rows(data["rows"], _ARCHS.value)
    if not data["rows"]:
      raise app.UsageError(f"--complete: no variant has all of {_ARCHS.value} on each seed.")
  summary = summarize(data["rows"])
  text = markdown(summary)
  if left_out:
    text += ("\nLeft out (a victim of --archs missing on some seed): "
             + ", ".join(sorted(left_out)) + ".\n")
  if _OUT_MD.value:
    atomic.write_text(_OUT_MD.value, text)
  print(text)
  if _OUT_PNG.value:
    figure(summary, _OUT_PNG.value, title(data), mark=_MARK.value)


def title(data: dict) -> str:
  """'<dataset> — <machine>, <victim sizing>' for the figure."""
  first, machine = data["rows"][0], data["machine"]
  if first.get("size", "cpu") == "full":
    card = machine.get("device_kind", machine["devices"][0])
    return f"{first['dataset']} — {card}, full-width victims, {first['victim']['epochs']} epochs"
  return f"{first['dataset']} — {machine['cpus']} CPU cores, CPU-sized victims"


if __name__ == "__main__":
  app.run(main)
