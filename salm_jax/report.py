"""`report`: one page per workdir that shows what was protected, how, and whether it held.

A researcher who protected a dataset needs to show (to a data owner, a
reviewer, a co-author) three things side by side: what the noise looks like,
that victims trained on the protected data fail while clean ones do not, and
that the images are still fit for use. `build_report` gathers those from
whatever the workdir holds and writes `report/index.md`, a self-contained
`report/index.html` and the PNGs under `report/figures/`.

The page is assembled as a short list of blocks (heading, paragraph, table,
figure, preformatted text) and rendered twice, to Markdown and to HTML, so
the two never disagree. Sections appear only for the stages that ran:
protect → config, images, generator history, utility; evaluate → victim
curves and the architecture × defense table; sweep → the sweep curve.
"""
from __future__ import annotations

import glob
import html
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from salm_jax import atomic, figures, workdir as wd
from salm_jax.evaluation import verdicts as evaluation_lib

FIGURES = "figures"
MAX_UTILITY_IMAGES = 2000  # per split, for the per-image distortion histograms

# A block is a tuple: ("h", level, text) | ("p", text) | ("table", headers, rows)
# | ("fig", relative_path, caption) | ("pre", text).
Block = tuple


# ------------------------------------------------------------------ reading ---


def _read_optional_json(workdir: str, *parts: str) -> Any:
  p = wd.path(workdir, *parts)
  return wd.read_json(p) if os.path.exists(p) else None


def _read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  rows = []
  with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f, 1):
      if line.strip():
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}, line {i}: not valid JSON: {e}") from e
  return rows


def _fmt(x: Any, digits: int = 3) -> str:
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return "n/a"
  if isinstance(x, float):
    return f"{x:.{digits}f}"
  return str(x)


# ----------------------------------------------------------------- sections ---


def _summary_section(manifest: dict) -> list[Block]:
  ds = manifest.get("dataset", {})
  method = manifest.get("method", "salm")  # manifests written before baselines existed: SALM
  title = ("SALM protection report" if method == "salm"
           else f"Protection report, noise method {method!r}")
  blocks: list[Block] = [("h", 1, f"{title}: {ds.get('name', '?')}")]
  blocks.append(("p", f"Dataset {ds.get('name')} ({ds.get('task')}, {ds.get('num_classes')} "
                      f"classes, {ds.get('image_size')}px, {ds.get('channels')} channel(s)); "
                      f"source: {ds.get('source')}."))
  ratio = ("mask ratio (the most of an image a step and δ may touch)" if method == "salm"
           else "mask ratio (fraction of pixels the noise may touch)")
  facts = [("noise method", method),
           ("perturbed splits", ", ".join(manifest.get("perturbed_splits", []))),
           ("epsilon (L∞)", f"{_fmt(manifest.get('epsilon'), 4)} = "
                            f"{manifest.get('linf_bound_uint8')}/255"),
           (ratio, _fmt(manifest.get("mask_ratio"))),
           ("surrogate", manifest.get("surrogate")),
           ("generator rounds", manifest.get("rounds")),
           ("final surrogate accuracy on x+δ", _fmt(manifest.get("final_surrogate_accuracy"))),
           ("stopped early", manifest.get("stopped_early")),
           ("generator time (s)", _fmt(manifest.get("generator_seconds"), 1)),
           ("created", manifest.get("created")),
           ("protected file", manifest.get("files", {}).get("data", {}).get("name"))]
  blocks.append(("table", ["", "value"], [[k, _fmt(v)] for k, v in facts]))
  return blocks


def _verdict_section(workdir: str, manifest: dict) -> list[Block]:
  """The answer first: do victims trained on the protected copy fail, and at what cost
  (`evaluation.verdict` says when a victim counts as held)."""
  split = (manifest.get("perturbed_splits") or ["train"])[0]
  u = manifest.get("split_stats", {}).get(split, {})
  most = u.get("frac_changed_max")
  cost = (f"Cost: the protected {split} split changes "
          + (f"at most {most:.1%} of an image's pixels ({u.get('frac_changed', 0):.1%} on "
             "average)" if most is not None else f"{u.get('frac_changed', 0):.1%} of the pixels")
          + f", each by at most {u.get('linf_uint8')}/255; PSNR {_fmt(u.get('psnr'), 1)} dB, "
          f"SSIM {_fmt(u.get('ssim'))} (lowest image {_fmt(u.get('ssim_min'))}).")
  results = _read_optional_json(workdir, wd.DONE_EVALUATE)
  if results is None:
    return [("h", 2, "Verdict"), ("p", "Not evaluated yet: `launch.evaluate` trains the victims "
                                       "that tell whether the copy protects."), ("p", cost)]
  v = evaluation_lib.verdict(results)
  table = [[h["arch"], _fmt(h["clean_auc"]), _fmt(h["protected_auc"]),
            "n/a" if h["lost"] is None else f"{h['lost']:.0%}"] for h in v["victims"]]
  verdict = (f"Protected: {v['word']}. Victims trained on the protected copy lost at least "
             f"half of their clean test AUC's margin over chance on {v['held']} of "
             f"{len(v['victims'])} architectures (last epoch, defense: {v['defense']}).")
  return [("h", 2, "Verdict"), ("p", verdict), ("p", cost),
          ("table", ["victim", "test AUC, trained on clean", "trained on protected",
                     "margin over chance lost"], table)]


def _config_section(config: dict | None) -> list[Block]:
  if config is None:
    return []
  return [("h", 2, "Configuration"),
          ("p", "The config in force for the run (config.json)."),
          ("pre", json.dumps(config, indent=2, sort_keys=True))]


def _images_section(workdir: str, manifest: dict, fig_dir: str) -> list[Block]:
  p = wd.path(workdir, wd.PREVIEW)
  if not os.path.exists(p):
    return []
  with np.load(p, allow_pickle=False) as z:
    preview = {k: z[k] for k in z.files}
  figures.plot_preview(preview, os.path.join(fig_dir, "preview.png"),
                       label_names=manifest.get("dataset", {}).get("label_names"),
                       epsilon_uint8=manifest.get("linf_bound_uint8"),
                       method=manifest.get("method", "salm"))
  return [("h", 2, "Images"),
          ("fig", f"{FIGURES}/preview.png",
           "First examples of the protected split. Rows: clean image; saliency |∇ loss| of the "
           "final surrogate (per image, scaled to its max; blank for model-free baselines); the "
           "pixels whose value the written file changes; the noise (protected − clean, in "
           "8-bit levels, amplified to the full colour range ±ε); the protected image.")]


def _generator_section(workdir: str, fig_dir: str) -> list[Block]:
  history = _read_jsonl(wd.path(workdir, wd.METRICS))
  if not history:
    return []
  figures.plot_generator_history(history, os.path.join(fig_dir, "generator.png"))
  cols = ["round", "accuracy", "train_accuracy", "train_loss", "frac_masked", "frac_nonzero",
          "seconds"]
  rows = [[_fmt(h.get(c), 1 if c == "seconds" else 3) for c in cols] for h in history]
  return [("h", 2, "Noise generator"),
          ("fig", f"{FIGURES}/generator.png",
           "Per bi-level round: accuracy of the surrogate on the noisy data (training stops "
           "once it is reached), its training loss, and the fraction of pixels in the mask / "
           "with non-zero noise."),
          ("table", cols, rows)]


def _per_image_utility(workdir: str, manifest: dict) -> dict | None:
  """Per-image distortion of each perturbed split, from the protected file and its exact noise.

  clean = protected − noise holds exactly (the noise is stored as int8 uint8
  differences), so the clean dataset need not be loaded. Returns None when
  the files are not there to read.
  """
  from salm_jax.evaluation import utility  # pulls in JAX; only needed here
  from salm_jax.data import protected as protected_lib
  out_dir = wd.path(workdir, wd.PROTECTED)
  data_file = os.path.join(out_dir, manifest.get("files", {}).get("data", {}).get("name", ""))
  if not os.path.isfile(data_file) or not os.path.exists(
      os.path.join(out_dir, protected_lib.NOISE_FILE)):
    return None
  noise = protected_lib.read_noise(out_dir)
  stats = {}
  with np.load(data_file, allow_pickle=False) as z:
    for s in manifest.get("perturbed_splits", []):
      if s not in noise or f"{s}_images" not in z.files:
        continue
      prot = z[f"{s}_images"][:MAX_UTILITY_IMAGES]
      delta = noise[s]["noise"][:MAX_UTILITY_IMAGES].astype(np.int16)
      clean = (prot.astype(np.int16) - delta).astype(np.uint8)
      stats[s] = utility.per_image_stats(clean, prot)
  return stats or None


def _utility_section(workdir: str, manifest: dict, fig_dir: str) -> list[Block]:
  split_stats = manifest.get("split_stats") or {}
  if not split_stats:
    return []
  per_image = _per_image_utility(workdir, manifest)
  figures.plot_utility(per_image or split_stats, os.path.join(fig_dir, "utility.png"))
  cols = ["split", "images", "changed images", "L∞ (uint8)", "pixels changed",
          "PSNR (dB, changed images)", "SSIM (all images)", "SSIM (changed images)",
          "lowest SSIM"]
  rows = [[s, _fmt(u.get("n_images")), _fmt(u.get("n_changed_images")),
           _fmt(u.get("linf_uint8")), _fmt(u.get("frac_changed"), 4), _fmt(u.get("psnr"), 2),
           _fmt(u.get("ssim"), 4), _fmt(u.get("ssim_changed"), 4), _fmt(u.get("ssim_min"), 4)]
          for s, u in split_stats.items()]
  what = (f"Histograms over the images (at most the first {MAX_UTILITY_IMAGES} of each split; "
          "unchanged images have infinite PSNR and are left out of its histogram)."
          if per_image else "Means per split, from the manifest.")
  return [("h", 2, "Utility: distortion of the protected images"),
          ("p", "PSNR is the mean over the images that changed; SSIM and the fraction of "
                "pixels changed are means over all images of the split."),
          ("table", cols, rows),
          ("fig", f"{FIGURES}/utility.png", what)]


def _victim_rows(results: dict) -> tuple[list[str], list[list[str]]]:
  cols = ["arch", "defense", "p"] + [f"{v} {m} {w}" for v in ("clean", "protected")
                                     for w in ("last", "best-val") for m in ("ACC", "AUC")]
  rows = []
  for r in results.get("rows", []):
    vals = [_fmt(r[v][w][m]) for v in ("clean", "protected") for w in ("last", "best_val")
            for m in ("acc", "auc")]
    rows.append([r["arch"], r["defense"], _fmt(r.get("poison_fraction"))] + vals)
  return cols, rows


def _arch_defense_matrix(results: dict) -> list[Block]:
  """Protected (clean) test ACC, last epoch: archs down, defenses across, one per fraction."""
  rows = results.get("rows", [])
  archs = list(dict.fromkeys(r["arch"] for r in rows))
  specs = list(dict.fromkeys(r["defense"] for r in rows))
  blocks: list[Block] = []
  for frac in dict.fromkeys(r.get("poison_fraction") for r in rows):
    cell = {(r["arch"], r["defense"]): r for r in rows if r.get("poison_fraction") == frac}
    table = [[a] + [f"{_fmt(cell[a, d]['protected']['last']['acc'])} "
                    f"({_fmt(cell[a, d]['clean']['last']['acc'])})" if (a, d) in cell else "–"
                    for d in specs] for a in archs]
    blocks += [("p", f"Test ACC at the last epoch, protected victim (clean victim), poison "
                     f"fraction p = {_fmt(frac)}:"),
               ("table", ["arch \\ defense"] + specs, table)]
  return blocks


def _diagnostic_rows(results: dict) -> list[list[str]]:
  seen, rows = set(), []
  for r in results.get("rows", []):
    d = r.get("diagnostic")
    if not d or (r["arch"], r["defense"]) in seen:
      continue
    seen.add((r["arch"], r["defense"]))
    rows.append([r["arch"], r["defense"], d.get("split", ""), _fmt(d["clean"]["acc"]),
                 _fmt(d["protected"]["acc"]), _fmt(d["clean"]["auc"]),
                 _fmt(d["protected"]["auc"]), _fmt(d.get("agreement"))])
  return rows


def _evaluation_section(workdir: str, fig_dir: str) -> list[Block]:
  results = _read_optional_json(workdir, wd.DONE_EVALUATE)
  if results is None:
    return []
  curves = _read_optional_json(workdir, wd.EVALUATION, "curves.json") or results.get("curves")
  settings = results.get("settings", {})
  blocks: list[Block] = [
      ("h", 2, "Victims: clean vs protected training data"),
      ("p", f"For each architecture × defense, one victim is trained on the clean training "
            f"set and one on the protected one (same initialization, "
            f"{settings.get('epochs', '?')} epochs), both tested on the clean test split. "
            "The protection works when the protected victim's test ACC / AUC collapse while "
            "the clean victim's do not. 'best-val' is the epoch of best validation AUC.")]
  if curves:
    figures.plot_victim_curves(curves, os.path.join(fig_dir, "victim_acc.png"), metric="test_acc")
    figures.plot_victim_curves(curves, os.path.join(fig_dir, "victim_auc.png"), metric="test_auc")
    blocks += [("fig", f"{FIGURES}/victim_acc.png", "Test ACC per epoch."),
               ("fig", f"{FIGURES}/victim_auc.png", "Test AUC per epoch.")]
  blocks += [("h", 3, "Architecture × defense")] + _arch_defense_matrix(results)
  cols, rows = _victim_rows(results)
  blocks += [("p", "Every victim pair, at the last epoch and at the epoch of best validation "
                   "AUC:"), ("table", cols, rows)]
  diag = _diagnostic_rows(results)
  if diag:
    blocks += [("h", 3, "Diagnostic utility"),
               ("p", "A victim trained on clean data classifies clean vs protected copies of "
                     "the same images; 'agreement' is the fraction of identical decisions."),
               ("table", ["arch", "defense", "split", "ACC clean", "ACC protected",
                          "AUC clean", "AUC protected", "agreement"], diag)]
  return blocks


def _sweep_section(workdir: str, fig_dir: str) -> list[Block]:
  table = _read_optional_json(workdir, wd.SWEEP, "table.json")
  if not table or not table.get("curve"):
    return []
  from salm_jax import sweep as sweep_lib  # the sweep stage pulls in JAX: only when needed
  figures.plot_sweep(table, os.path.join(fig_dir, "sweep.png"))
  lines = sweep_lib.table_markdown(table).splitlines()
  cols = [c.strip() for c in lines[0].strip("|").split("|")]
  out = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
  return [("h", 2, f"Sweep over {table.get('parameter', 'a parameter')}"),
          ("fig", f"{FIGURES}/sweep.png",
           "Victims trained on the protected data at each value (test AUC and ACC, last "
           "epoch; the zoo mean is over the victims, ± its std over the seeds), and what the "
           "noise costs: distortion of the written file, pixels changed, generation time."),
          ("table", cols, out)]


# ---------------------------------------------------------------- rendering ---


def _md_cell(text: str) -> str:
  return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
  """The blocks as GitHub-flavoured Markdown."""
  out = []
  for b in blocks:
    if b[0] == "h":
      out.append("#" * b[1] + " " + b[2])
    elif b[0] == "p":
      out.append(b[1])
    elif b[0] == "pre":
      out.append("```json\n" + b[1] + "\n```")
    elif b[0] == "fig":
      alt = os.path.splitext(os.path.basename(b[1]))[0]
      out.append(f"![{alt}]({b[1]})\n\n*{b[2]}*")
    elif b[0] == "table":
      lines = ["| " + " | ".join(_md_cell(h) for h in b[1]) + " |",
               "|" + "---|" * len(b[1])]
      lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b[2]]
      out.append("\n".join(lines))
    else:
      raise ValueError(f"unknown report block {b[0]!r}")
  return "\n\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
pre{background:#f6f8fa;padding:.8em;overflow:auto;max-height:30em;font-size:.85em}
h1{border-bottom:2px solid #ddd}h2{border-bottom:1px solid #eee;margin-top:1.6em}"""


def to_html(blocks: Sequence[Block], title: str) -> str:
  """The blocks as one HTML page: inline CSS, all text escaped, figures by relative path."""
  e = html.escape
  out = []
  for b in blocks:
    if b[0] == "h":
      out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
    elif b[0] == "p":
      out.append(f"<p>{e(b[1])}</p>")
    elif b[0] == "pre":
      out.append(f"<details open><summary>config.json</summary><pre>{e(b[1])}</pre></details>")
    elif b[0] == "fig":
      out.append(f'<figure><img src="{e(b[1], quote=True)}" alt="{e(b[2], quote=True)}">'
                 f"<figcaption>{e(b[2])}</figcaption></figure>")
    elif b[0] == "table":
      head = "".join(f"<th>{e(str(h))}</th>" for h in b[1])
      body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                     for row in b[2])
      out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    else:
      raise ValueError(f"unknown report block {b[0]!r}")
  return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
          f"<title>{e(title)}</title><style>{_CSS}</style></head><body>\n"
          + "\n".join(out) + "\n</body></html>\n")


# -------------------------------------------------------------------- build ---


def report_blocks(workdir: str, fig_dir: str) -> list[Block]:
  """Every section the workdir has material for; draws the figures into `fig_dir`."""
  manifest_path = wd.path(workdir, wd.DONE_PROTECT)
  if not os.path.exists(manifest_path):
    raise FileNotFoundError(f"{manifest_path} not found: {workdir} holds no finished "
                            "protection; run launch.protect first.")
  manifest = wd.read_json(manifest_path)
  config = wd.read_config(workdir) or manifest.get("config")
  summary = _summary_section(manifest)
  return (summary[:1] + _verdict_section(workdir, manifest) + [("h", 2, "The run")]
          + summary[1:]
          + _config_section(config)
          + _images_section(workdir, manifest, fig_dir) + _generator_section(workdir, fig_dir)
          + _utility_section(workdir, manifest, fig_dir) + _evaluation_section(workdir, fig_dir)
          + _sweep_section(workdir, fig_dir))


def build_report(workdir: str) -> str:
  """Writes `<workdir>/report/{index.md, index.html, figures/*.png}`; returns index.html's path."""
  report_dir = wd.path(workdir, wd.REPORT)
  fig_dir = os.path.join(report_dir, FIGURES)
  os.makedirs(fig_dir, exist_ok=True)
  before = set(glob.glob(os.path.join(fig_dir, "*.png")))
  blocks = report_blocks(workdir, fig_dir)
  drawn = {os.path.join(report_dir, b[1]) for b in blocks if b[0] == "fig"}
  for stale in before - drawn:  # figures of a section the workdir no longer has
    os.remove(stale)
  title = blocks[0][2]
  atomic.write_text(os.path.join(report_dir, "index.md"), to_markdown(blocks))
  out = os.path.join(report_dir, "index.html")
  atomic.write_text(out, to_html(blocks, title))
  return out


__all__ = ["build_report", "report_blocks", "to_markdown", "to_html"]
