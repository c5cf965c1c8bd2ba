"""docs/RESULTS.md from the rows committed beside it: `python -m benchmarks.results_page`.

The page's text is `docs/results/page.md`; each line of it that is a
directive, `{{<kind>:<dataset>}}`, becomes tables or a figure computed from
the JSON rows under docs/results/ (written by `benchmarks/frontier.py` and
`launch.sweep`):

  {{methods:D}}    victims' test AUC per method (mean ± std over seeds), and
                   what each method costs: L∞, pixels changed, PSNR, SSIM
  {{frontier:D}}   the figure: zoo-mean AUC against PSNR and pixels changed
  {{ablation:D}}   the mask-ratio curve (`launch.sweep`'s table) and its table
  {{defenses:D}}   victims that train through a defense
  {{gpu:D}}        the paper-sized rows (one GPU)

Rows with the same (variant, seed, victim, defense) in a later file replace
an earlier one. Only the methods named in `METHODS` are shown.
"""
from __future__ import annotations

import argparse
import json
import os
import re

import numpy as np

from benchmarks import frontier_report
from salm_jax import atomic
from salm_jax import figures
from salm_jax import sweep as sweep_lib

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results")
VICTIMS = ("small_cnn", "resnet18", "vgg16", "vit_small", "resnet50", "densenet121")
FAST = VICTIMS[:4]  # the zoo mean: the four victims every method has on every seed
NAMES = {"small_cnn": "small CNN", "resnet18": "ResNet-18", "vgg16": "VGG-16",
         "vit_small": "ViT", "resnet50": "ResNet-50", "densenet121": "DenseNet-121"}

# The row files of each table, oldest first.
SOURCES = {
    ("methods", "breastmnist"): ["breastmnist_cpu_s0.json", "breastmnist_cpu_s1.json",
                                 "breastmnist_cpu_s2.json", "breastmnist_cpu_lattice.json",
                                 "breastmnist.json"],
    ("methods", "pneumoniamnist"): ["pneumoniamnist_cpu.json", "pneumoniamnist.json"],
    ("defenses", "breastmnist"): ["breastmnist_cpu_defenses.json",
                                  "breastmnist_cpu_lattice_defenses.json",
                                  "breastmnist_defenses.json"],
    ("gpu", "breastmnist"): ["h200/breastmnist_full_s0.json", "h200/breastmnist_full_s1.json",
                             "h200/breastmnist_full_s2.json", "h200/breastmnist_full_c_s0.json",
                             "h200/breastmnist_full_c_s1.json", "h200/breastmnist_full_c_s2.json",
                             "h200/breastmnist_full_d_s0.json", "h200/breastmnist_full_d_s1.json",
                             "h200/breastmnist_full_d_s2.json"],
    ("ablation", "breastmnist"): ["ablation_breastmnist.json"],
    ("ablation", "pneumoniamnist"): ["ablation_pneumoniamnist.json"],
}

# variant -> (label, config and what sets it apart). The order is the tables' order.
METHODS = {
    "clean": ("clean data", "no protection"),
    "salm": ("**SALM**, the default", "`configs/salm.py`: class-wise, top 10 %, 8/255"),
    "salm_sample": ("SALM, one δ per image", "`--config.noise.mode=sample`"),
    "random_salm": ("random signs on SALM's pixels", "`configs/random_noise.py`, the control"),
    "salm_fixed": ("SALM on a fixed support", "`configs/salm_fixed.py`"),
    "random_fixed": ("random signs on its pixels", "control of the line above"),
    "em": ("EM", "`configs/em.py`: every pixel, one δ per image, 8/255"),
    "em_equal_psnr": ("EM at the lattice's PSNR", "`configs/em.py`, 35.6 dB budget"),
    "ops": ("OPS", "`configs/ops.py`: one pixel per class, unbounded"),
    "ops_equal_psnr": ("OPS, change ≤ 117/255", "`configs/ops.py`, 35.7 dB"),
    "adversarial": ("error-maximizing, class-wise", "`configs/adversarial.py`"),
    "random_adversarial": ("random signs on its pixels", "control of the line above"),
    "flat": ("patterns on the flattest pixels", "`configs/flat.py`"),
    "lattice_onesided_35db_ssim95": ("lattice texture", "`configs/lattice.py`: 18/255, SSIM ≥ 0.95"),
    "lattice_major_35db_ssim95": ("lattice texture", "`configs/lattice.py`: 18/255, SSIM ≥ 0.95"),
    "random_lattice_busiest_ssim95": ("random signs on its pixels", "control of the line above"),
    "lattice_onesided_35db": ("lattice, no SSIM floor", "`--config.noise.lattice.min_ssim=0`"),
    "lattice_major_35db": ("lattice, no SSIM floor", "`--config.noise.lattice.min_ssim=0`"),
    "lattice_onesided": ("lattice at 8/255, no floor", "`--config.noise.epsilon=8/255 ...`"),
}


def load_rows(kind: str, dataset: str) -> list[dict]:
  rows = []
  for name in SOURCES.get((kind, dataset), []):
    path = os.path.join(RESULTS, name)
    if os.path.exists(path):
      rows += json.load(open(path, encoding="utf-8"))["rows"]
  return frontier_report.latest_rows(rows)


def _pm(stats, digits: int = 3) -> str:
  mean, std, n = stats
  if not n:
    return "–"
  return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}¹"


def _zoo(v: dict) -> tuple[tuple, str]:
  """(mean ± std over seeds of the four-victim mean, the worst victim's mean AUC and name)."""
  seeds = v["seeds"]
  per_seed = [np.mean([v["auc_by_seed"][a][s] for a in FAST]) for s in seeds
              if all(s in v["auc_by_seed"].get(a, {}) for a in FAST)]
  zoo = frontier_report._stats(per_seed)  # pylint: disable=protected-access
  means = {a: v["archs"][a]["auc"][0] for a in VICTIMS if a in v["archs"]}
  worst = max(means, key=means.get) if means else None
  return zoo, "–" if worst is None else f"{means[worst]:.3f} ({NAMES[worst]})"


def methods_tables(dataset: str) -> str:
  """Protection per victim, then what each method costs, one line per method."""
  summary = frontier_report.summarize([r for r in load_rows("methods", dataset)
                                       if r.get("defense", "none") == "none"])
  names = [n for n in METHODS if n in summary]
  head = (["method", "seeds"] + [NAMES[a] for a in VICTIMS]
          + ["mean of the first four", "worst victim"])
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for n in names:
    v = summary[n]
    zoo, worst = _zoo(v)
    cells = [METHODS[n][0], str(len(v["seeds"]))]
    cells += [_pm(v["archs"][a]["auc"]) if a in v["archs"] else "–" for a in VICTIMS]
    lines.append("| " + " | ".join(cells + [_pm(zoo), worst]) + " |")
  cost = ["", "| method | what | L∞ (uint8) | pixels changed, mean | most in one image | "
          "PSNR (dB) | SSIM, mean | lowest SSIM | generation (s) |",
          "|---|---|---|---|---|---|---|---|---|"]
  for n in names[1:]:
    d = summary[n]["distortion"]
    most = _most_changed(load_rows("methods", dataset), n)
    cost.append("| " + " | ".join([
        METHODS[n][0], METHODS[n][1], _pm(d["linf_uint8"], 0), _pm(d["frac_changed"]),
        most, _pm(d["psnr"], 2), _pm(d["ssim"]),
        "–" if d["ssim_lowest"] is None else f"{d['ssim_lowest']:.3f}",
        _pm(d["generator_seconds"], 0)]) + " |")
  return "\n".join(lines + cost)


def _most_changed(rows: list[dict], variant: str) -> str:
  values = [r["distortion"].get("frac_changed_max") for r in rows if r["variant"] == variant]
  values = [x for x in values if x is not None]
  return f"{max(values):.3f}" if values else "–"


def frontier_figure(dataset: str) -> str:
  rows = [r for r in load_rows("methods", dataset) if r.get("defense", "none") == "none"
          and r["variant"] in METHODS and frontier_report._victim(r) in FAST]  # pylint: disable=protected-access
  summary = frontier_report.summarize(rows)
  path = os.path.join(RESULTS, f"{dataset}_frontier.png")
  frontier_report.figure(summary, path, f"{dataset}: victims trained on each protected copy",
                         mark=("salm",), labels={n: METHODS[n][0].strip("*") for n in summary})
  return (f"![{dataset}: protection against distortion](results/{dataset}_frontier.png)\n\n"
          "Mean test AUC of the four fast victims (± std over seeds) against the PSNR and the "
          "pixels changed of the written file; SALM is the star.")


def ablation(dataset: str) -> str:
  path = os.path.join(RESULTS, f"ablation_{dataset}.json")
  if not os.path.exists(path):
    return f"(no ablation rows for {dataset})"
  table = json.load(open(path, encoding="utf-8"))
  png = os.path.join(RESULTS, f"ablation_{dataset}.png")
  figures.plot_sweep(table, png)
  return (f"![{dataset}: the mask-ratio ablation](results/ablation_{dataset}.png)\n\n"
          + sweep_lib.table_markdown(table))


def defenses(dataset: str) -> str:
  """Victims (ResNet-18, VGG-16, small CNN) trained through each defense, per method."""
  rows = load_rows("defenses", dataset) + [r for r in load_rows("methods", dataset)
                                           if r.get("defense", "none") == "none"]
  summary = frontier_report.summarize(rows)
  archs = ("small_cnn", "resnet18", "vgg16")
  groups = sorted({g.split(" [")[1][:-1] for g in summary if " [" in g})
  head = ["method", "defense"] + [NAMES[a] for a in archs]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for n in (n for n in METHODS if n in summary):
    for defense in ["none"] + groups:
      key = n if defense == "none" else f"{n} [{defense}]"
      if key not in summary or (defense == "none" and not any(
          f"{n} [{g}]" in summary for g in groups)):
        continue
      v = summary[key]
      lines.append("| " + " | ".join([METHODS[n][0], defense] + [
          _pm(v["archs"][a]["auc"]) if a in v["archs"] else "–" for a in archs]) + " |")
  return "\n".join(lines)


def gpu(dataset: str) -> str:
  summary = frontier_report.summarize(load_rows("gpu", dataset))
  archs = [a for a in VICTIMS if any(a in v["archs"] for v in summary.values())]
  head = ["variant", "seeds", "PSNR (dB)", "pixels changed"] + [NAMES[a] for a in archs]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for n, v in summary.items():
    d = v["distortion"]
    lines.append("| " + " | ".join([n, str(len(v["seeds"])), _pm(d["psnr"], 2),
                                    _pm(d["frac_changed"])] + [
        _pm(v["archs"][a]["auc"]) if a in v["archs"] else "–" for a in archs]) + " |")
  return "\n".join(lines)


DIRECTIVES = {"methods": methods_tables, "frontier": frontier_figure, "ablation": ablation,
              "defenses": defenses, "gpu": gpu}
_DIRECTIVE = re.compile(r"^\{\{(\w+):(\w+)\}\}$")


def render(template: str) -> str:
  out = []
  for line in template.splitlines():
    m = _DIRECTIVE.match(line.strip())
    out.append(DIRECTIVES[m.group(1)](m.group(2)) if m else line)
  return "\n".join(out) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--template", default=os.path.join(RESULTS, "page.md"))
  parser.add_argument("--out", default=os.path.join(RESULTS, "..", "RESULTS.md"))
  args = parser.parse_args()
  text = render(open(args.template, encoding="utf-8").read())
  atomic.write_text(args.out, text)
  print(f"{os.path.normpath(args.out)}: {len(text.splitlines())} lines")


if __name__ == "__main__":
  main()
