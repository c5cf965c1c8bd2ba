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
  {{length:D}}     victims at MedMNIST's full recipe (full width, 100 epochs,
                   batch 128), beside the CPU recipe
  {{size64:D}}     the same methods at 64 px (`<D>_64.npz`), beside 28 px
  {{looks:D}}      clean and protected training images side by side, magnified, and
                   their difference (from `looks_D.npz`, which `--looks` extracts)

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
    ("gpu", "pneumoniamnist"): ["h200/pneumoniamnist_full_s012.json",
                                "h200/pneumoniamnist_full_d_s0.json",
                                "h200/pneumoniamnist_full_d_s1.json",
                                "h200/pneumoniamnist_full_d_s2.json"],
    ("length", "breastmnist"): ["breastmnist_length.json"],
    ("size64", "breastmnist"): ["breastmnist_64.json"],
    ("ablation", "breastmnist"): ["ablation_breastmnist.json"],
    ("ablation", "pneumoniamnist"): ["ablation_pneumoniamnist.json"],
    ("ablation", "breastmnist_index_ties"): ["ablation_breastmnist_index_ties.json"],
}

# variant -> (label, config and what sets it apart).
METHODS = {
    "clean": ("clean data", "no protection"),
    "salm": ("**SALM**, the default", "`configs/salm.py`: class-wise, top 10 %, 8/255"),
    "salm_sample": ("SALM, one δ per image", "`--config.noise.mode=sample`"),
    "random_salm": ("random signs on SALM's pixels", "`configs/random_noise.py`, the control"),
    "salm_fixed": ("SALM on a fixed support", "`configs/salm_fixed.py`"),
    "random_fixed": ("random signs on its pixels", "control of the line above"),
    "em": ("EM", "`configs/em.py`: every pixel, one δ per image, 8/255"),
    "em_class": ("class-wise EM", "`--config.noise.mask_ratio=1.0`: every pixel, one δ per class"),
    "em_equal_psnr": ("EM at the lattice's PSNR", "`configs/em.py`, 35.6 dB budget"),
    "ops": ("OPS", "`configs/ops.py`: one pixel per class, unbounded"),
    "ops_equal_psnr": ("OPS, change ≤ 117/255", "`configs/ops.py`, 35.7 dB"),
    "adversarial": ("error-maximizing, class-wise", "`configs/adversarial.py`"),
    "random_adversarial": ("random signs on its pixels", "control of the line above"),
    "random": ("random signs, random pixels", "`configs/random_noise.py`, 10 % per class"),
    "flat": ("patterns on the flattest pixels", "`configs/flat.py`"),
    "ar": ("AR poisons", "`configs/ar.py`: every pixel, L2 = 1, model-free"),
    "lsp": ("LSP", "`configs/lsp.py`: every pixel, 8×8 patches, model-free"),
    "salm_ar": ("SALM from an AR start", "`--config.noise.init=ar`"),
    "salm_lsp": ("SALM from an LSP start", "`--config.noise.init=lsp`"),
    "salm_index_ties": ("SALM, ±ε ties kept in raster order", "`--config.noise.support_ties=index`"),
    "random_salm_index_ties": ("random signs on its pixels", "control of the line above"),
    "salm_eot": ("SALM over crops and flips", "`--config.noise.eot_samples=4`"),
    "salm_ensemble": ("SALM, ensemble of three zoo architectures",
                      "`--config.surrogate.ensemble=...`: small CNN, ResNet-18, VGG-16"),
    "lattice_onesided_35db_ssim95": ("lattice texture", "`configs/lattice.py`: 18/255, SSIM ≥ 0.95"),
    "lattice_major_35db_ssim95": ("lattice texture", "`configs/lattice.py`: 18/255, SSIM ≥ 0.95"),
    "random_lattice_busiest_ssim95": ("random signs on its pixels", "control of the line above"),
    "lattice_onesided_35db": ("lattice, no SSIM floor", "`--config.noise.lattice.min_ssim=0`"),
    "lattice_major_35db": ("lattice, no SSIM floor", "`--config.noise.lattice.min_ssim=0`"),
    "lattice_onesided": ("lattice at 8/255, no floor", "`--config.noise.epsilon=8/255 ...`"),
}
# The rows of each dataset's methods table, in order. The lattice rows named for the class
# they leave bare are the files `configs/lattice.py` writes on that dataset.
TABLES = {
    "breastmnist": ["clean", "salm", "random_salm", "salm_sample", "salm_eot", "salm_ensemble",
                    "salm_ar", "salm_lsp", "salm_index_ties", "random_salm_index_ties",
                    "random", "salm_fixed", "random_fixed", "em", "em_equal_psnr", "ops",
                    "ops_equal_psnr", "ar", "lsp", "adversarial", "random_adversarial", "flat",
                    "lattice_onesided_35db_ssim95", "random_lattice_busiest_ssim95",
                    "lattice_onesided_35db", "lattice_onesided"],
    "pneumoniamnist": ["clean", "salm", "random_salm", "em", "em_class", "em_equal_psnr", "ops",
                       "ops_equal_psnr", "ar", "lsp", "salm_ensemble", "salm_ar", "salm_lsp",
                       "lattice_major_35db_ssim95", "random_lattice_busiest_ssim95",
                       "lattice_major_35db"],
}


# The paper-sized rows: class-wise SALM on a fixed support (k = 79 of 784 pixels) and
# what was measured beside it.
GPU = {"clean": "clean data", "salm_class": "SALM on a fixed support",
       "salm_class_r3": "the same, 3 min-min rounds instead of 10",
       "salm_class_pre": "the same, min-min from the pretrained surrogate",
       "random_class": "random signs on its pixels", "salm_class_35db": "SALM on a fixed "
       "support, 35 dB (14/255)", "random_class_35db": "random signs on its pixels, 35 dB",
       "adv_class": "error-maximizing, class-wise", "random_adv": "random signs on its pixels",
       "flat_onesided": "patterns on the flattest pixels", "flat_antipodal": "the same, "
       "antipodal", "flat_antipodal_35db": "the same, antipodal, 35 dB (14/255)",
       "em": "EM (8/255)", "ops": "OPS"}


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
  names = [n for n in TABLES[dataset] if n in summary]
  head = (["method", "seeds"] + [NAMES[a] for a in VICTIMS]
          + ["mean, first four", "worst victim"])
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for n in names:
    v = summary[n]
    zoo, worst = _zoo(v)
    cells = [METHODS[n][0], str(len(v["seeds"]))]
    cells += [_pm(v["archs"][a]["auc"]) if a in v["archs"] else "–" for a in VICTIMS]
    lines.append("| " + " | ".join(cells + [_pm(zoo), worst if n != "clean" else "–"]) + " |")
  cost = ["", "| method | what | L∞ (uint8) | pixels changed, mean | most in one image | "
          "PSNR (dB) | SSIM, mean | lowest SSIM | generation (s) |",
          "|---|---|---|---|---|---|---|---|---|"]
  for n in names[1:]:
    d = summary[n]["distortion"]
    most = _most_changed(load_rows("methods", dataset), n)
    cost.append("| " + " | ".join([
        METHODS[n][0], METHODS[n][1], f"{d['linf_uint8'][0]:.0f}", _pm(d["frac_changed"]),
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
          and r["variant"] in TABLES[dataset] and frontier_report._victim(r) in FAST]  # pylint: disable=protected-access
  victims = {}
  for r in rows:
    victims.setdefault((r["variant"], r["seed"]), set()).add(frontier_report._victim(r))  # pylint: disable=protected-access
  rows = [r for r in rows if victims[r["variant"], r["seed"]] >= set(FAST)]  # whole seeds only
  summary = frontier_report.summarize(rows)
  path = os.path.join(RESULTS, f"{dataset}_frontier.png")
  frontier_report.figure(summary, path, f"{dataset}: victims trained on each protected copy",
                         mark=("salm",), labels={n: METHODS[n][0].replace("*", "")
                                                 for n in summary})
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
  """Victims (small CNN, ResNet-18, VGG-16) trained through each defense: a line per method
  and victim, a column per defense."""
  rows = load_rows("defenses", dataset) + [r for r in load_rows("methods", dataset)
                                           if r.get("defense", "none") == "none"]
  summary = frontier_report.summarize(rows)
  groups = sorted({g.split(" [")[1][:-1] for g in summary if " [" in g})
  head = ["method", "victim", "none"] + groups
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for n in (n for n in TABLES[dataset] if n in summary):
    for a in ("small_cnn", "resnet18", "vgg16"):
      cells = [summary.get(n if g == "none" else f"{n} [{g}]", {"archs": {}})["archs"].get(a)
               for g in ["none"] + groups]
      if any(cells[1:]):  # a victim with at least one defense
        lines.append("| " + " | ".join([METHODS[n][0], NAMES[a]] + [
            _pm(c["auc"]) if c else "–" for c in cells]) + " |")
  return "\n".join(lines)


def gpu(dataset: str) -> str:
  summary = frontier_report.summarize(load_rows("gpu", dataset))
  archs = [a for a in VICTIMS if any(a in v["archs"] for v in summary.values())]
  head = ["method", "seeds", "PSNR (dB)", "pixels changed"] + [NAMES[a] for a in archs]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for n in (n for n in GPU if n in summary):
    v, d = summary[n], summary[n]["distortion"]
    lines.append("| " + " | ".join([GPU[n], str(len(v["seeds"])), _pm(d["psnr"], 2),
                                    _pm(d["frac_changed"])] + [
        _pm(v["archs"][a]["auc"]) if a in v["archs"] else "–" for a in archs]) + " |")
  return "\n".join(lines)


def _beside_methods(kind: str, dataset: str, theirs: str, ours: str) -> str:
  """Each method's AUC per victim in the methods table (`theirs`) and in `kind`'s rows (`ours`)."""
  rows = frontier_report.summarize(load_rows(kind, dataset))
  table = frontier_report.summarize([r for r in load_rows("methods", dataset)
                                     if r.get("defense", "none") == "none"])
  archs = [a for a in VICTIMS if any(a in v["archs"] for v in rows.values())]
  head = ["method", f"seeds, {ours}"] + [f"{NAMES[a]}, {label}" for a in archs
                                          for label in (theirs, ours)]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for n in (n for n in TABLES[dataset] if n in rows):
    cells = [METHODS[n][0], str(len(rows[n]["seeds"]))]
    for a in archs:
      for summary in (table, rows):
        v = summary.get(n, {"archs": {}})
        cells.append(_pm(v["archs"][a]["auc"]) if a in v["archs"] else "–")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def length(dataset: str) -> str:
  """Each method's AUC with the CPU recipe (the methods table) and MedMNIST's full recipe."""
  return _beside_methods("length", dataset, "CPU recipe", "full recipe")


def size64(dataset: str) -> str:
  """Each method's AUC at 28 px (the methods table) and at 64 px."""
  return _beside_methods("size64", dataset, "28 px", "64 px")


def looks(dataset: str) -> str:
  """Clean images, then each method's protected copy and its difference, magnified."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  with np.load(os.path.join(RESULTS, f"looks_{dataset}.npz")) as z:
    arrays = {k: z[k] for k in z.files}
  clean, methods = arrays.pop("clean"), [k for k in arrays if k != "labels"]
  rows = [("clean", clean, "gray")] + [r for m in methods for r in (
      (METHODS[m][0].replace("*", ""), arrays[m], "gray"),
      ("protected − clean", arrays[m].astype(np.int16) - clean, "diff"))]
  fig, axes = plt.subplots(len(rows), len(clean), figsize=(2.1 * len(clean), 2.2 * len(rows)),
                           squeeze=False)
  for i, (name, images, kind) in enumerate(rows):
    for j, image in enumerate(images):
      image = image[..., 0] if image.shape[-1] == 1 else image
      kw = (dict(cmap="gray", vmin=0, vmax=255) if kind == "gray" and image.ndim == 2 else
            dict(cmap="RdBu_r", vmin=-18, vmax=18) if kind == "diff" else {})
      shown = image if kind == "gray" or image.ndim == 2 else image.mean(-1)
      axes[i, j].imshow(shown, interpolation="nearest", **kw)
      axes[i, j].set_xticks([])
      axes[i, j].set_yticks([])
      if j == 0:
        axes[i, j].set_ylabel(name, fontsize=8)
      if i == 0:
        axes[i, j].set_title(f"label {int(arrays['labels'][j, 0])}", fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, f"looks_{dataset}.png"), dpi=90)
  plt.close(fig)
  return (f"![{dataset}: clean and protected training images](results/looks_{dataset}.png)\n\n"
          "Training images at 28 px, magnified without smoothing: the clean image, each "
          "method's protected copy, and protected − clean in levels (blue −, red +, "
          "±18 levels full scale).")


def extract_looks(spec: str, count: int = 3) -> str:
  """`D:name=<protected folder>,...` -> looks_D.npz: the first `count` images of each class."""
  from salm_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  dataset, pairs = spec.split(":", 1)
  folders = dict(p.split("=", 1) for p in pairs.split(","))
  copies = {name: data_lib.read_protected(folder)[0] for name, folder in folders.items()}
  first = next(iter(copies.values()))
  labels = first.splits["train"].labels
  idx = np.concatenate([np.flatnonzero(labels[:, 0] == c)[:count]
                        for c in np.unique(labels[:, 0])])
  clean = data_lib.load_dataset(dataset, data_dir=os.path.join(RESULTS, "..", "..", "..",
                                                               "shared", "data", "medmnist"),
                                download=False).splits["train"]
  arrays = {"clean": clean.images[idx], "labels": labels[idx],
            **{n: c.splits["train"].images[idx] for n, c in copies.items()}}
  arrays = {k: v if v.ndim != 3 or k == "labels" else v[..., None] for k, v in arrays.items()}
  path = os.path.join(RESULTS, f"looks_{dataset}.npz")
  np.savez_compressed(path, **arrays)
  return path


DIRECTIVES = {"methods": methods_tables, "frontier": frontier_figure, "ablation": ablation,
              "defenses": defenses, "gpu": gpu, "length": length, "size64": size64,
              "looks": looks}
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
  parser.add_argument("--looks", action="append", default=[],
                      help="D:name=<protected folder>,...: extract looks_D.npz first")
  args = parser.parse_args()
  for spec in args.looks:
    print(f"wrote {extract_looks(spec)}")
  text = render(open(args.template, encoding="utf-8").read())
  atomic.write_text(args.out, text)
  print(f"{os.path.normpath(args.out)}: {len(text.splitlines())} lines")


if __name__ == "__main__":
  main()
