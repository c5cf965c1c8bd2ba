"""The report's figures: what the noise looks like, whether it works, what it costs.

Each function draws one PNG from plain data that the pipeline already wrote
(preview.npz, metrics.jsonl, evaluation/curves.json, split stats, the sweep
table), so figures can be redrawn from a workdir at any time without JAX.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas, never
through pyplot: no GUI backend is touched, no global figure registry fills up
in a long sweep, and importing this module does not change the backend of a
notebook that imports it. Every PNG is rendered to memory and then written
with `atomic.write_bytes`, so a reader never sees half an image.
"""
from __future__ import annotations

import io
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from salm_jax import atomic

DPI = 100
_ROWS = ("clean", "saliency", "mask", "noise", "protected")


def save(fig: Figure, path: str) -> str:
  """Renders `fig` to PNG in memory, then writes it atomically to `path`."""
  FigureCanvasAgg(fig)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
  atomic.write_bytes(path, buf.getvalue())
  return path  # no pyplot registry holds `fig`: it is freed with its last reference


def _nan(x: Any) -> float:
  """None (JSON null for an undefined figure) as NaN, so lines break instead of failing."""
  return math.nan if x is None else float(x)


# ------------------------------------------------------------------ preview ---


def _label_text(labels: np.ndarray, label_names: Mapping[str, str] | None) -> str:
  labels = np.asarray(labels).reshape(-1)
  if labels.size == 1:
    idx = str(int(labels[0]))
    name = (label_names or {}).get(idx)
    return f"{idx}: {name}" if name else f"label {idx}"
  on = [str(i) for i in np.flatnonzero(labels)]
  return "labels {" + ",".join(on) + "}" if on else "no labels"


def _noise_image(noise: np.ndarray, bound: float) -> tuple[np.ndarray, dict]:
  """Gray noise: a diverging colormap in ±bound. RGB noise: 128 + noise·127/bound as RGB."""
  if noise.ndim == 2:
    return noise.astype(np.float32), {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
  rgb = np.clip(0.5 + noise.astype(np.float32) / (2.0 * bound), 0.0, 1.0)
  return rgb, {}


def _check_preview(preview: Mapping[str, np.ndarray]) -> int:
  missing = [k for k in _ROWS if k not in preview]
  if missing:
    raise ValueError(f"preview lacks {missing}; it needs {list(_ROWS)} (see protect's "
                     "preview.npz).")
  n = len(preview["clean"])
  for k in _ROWS:
    if len(preview[k]) != n:
      raise ValueError(f"preview[{k!r}] holds {len(preview[k])} images, preview['clean'] {n}.")
  if n == 0:
    raise ValueError("preview holds no images.")
  return n


def plot_preview(preview: Mapping[str, np.ndarray], path: str, *,
                 label_names: Mapping[str, str] | None = None,
                 epsilon_uint8: int | None = None, max_images: int = 8,
                 method: str = "salm") -> str:
  """Rows clean / saliency / changed pixels / noise / protected, one column per example.

  `method` other than 'salm' names a model-free baseline in the title (its
  saliency row is blank). The third row is the pixels the written file changes.

  The noise row is amplified to the full colour range: ±`epsilon_uint8` (the
  L∞ budget in 8-bit levels; the largest |noise| when not given) maps to the
  ends of a diverging colormap (gray) or to 0 / 255 around mid-gray (RGB).
  """
  n = min(_check_preview(preview), max_images)
  noise = np.asarray(preview["noise"][:n])
  bound = float(epsilon_uint8 or max(int(np.abs(noise.astype(np.int16)).max(initial=0)), 1))
  fig = Figure(figsize=(1.55 * n + 1.2, 1.6 * len(_ROWS) + 0.4))
  axes = fig.subplots(len(_ROWS), n, squeeze=False)
  noise_im = None
  for j in range(n):
    clean, prot = np.asarray(preview["clean"][j]), np.asarray(preview["protected"][j])
    gray = {"cmap": "gray", "vmin": 0, "vmax": 255} if clean.ndim == 2 else {}
    sal = np.asarray(preview["saliency"][j], np.float32)
    sal = sal / sal.max() if sal.max() > 0 else sal
    mask = np.any(noise[j] != 0, axis=-1) if noise[j].ndim == 3 else noise[j] != 0
    noise_j, noise_kw = _noise_image(noise[j], bound)
    axes[0, j].imshow(clean, **gray)
    axes[1, j].imshow(sal, cmap="inferno", vmin=0, vmax=1)
    axes[2, j].imshow(mask, cmap="gray", vmin=0, vmax=1)
    im = axes[3, j].imshow(noise_j, **noise_kw)
    noise_im = im if noise_kw else noise_im
    axes[4, j].imshow(prot, **gray)
    axes[0, j].set_title(_label_text(preview["labels"][j], label_names) if "labels" in preview
                         else f"#{j}", fontsize=8)
    axes[2, j].set_title(f"{mask.mean():.1%} changed", fontsize=7)
  for ax in axes.flat:  # keep the frames: an all-white mask or noise-free image stays visible
    ax.set_xticks([])
    ax.set_yticks([])
  row_names = ("clean", "saliency\n|∇ loss|", "changed pixels\n(written file)",
               f"noise\n(±{bound:g}/255)", "protected")
  for i, name in enumerate(row_names):
    axes[i, 0].set_ylabel(name, fontsize=9)
  if noise_im is not None:
    cax = axes[3, -1].inset_axes([1.06, 0.0, 0.07, 1.0])
    cbar = fig.colorbar(noise_im, cax=cax)
    cbar.ax.tick_params(labelsize=7)
  fig.suptitle("Clean images, surrogate saliency, changed pixels, noise and protected images"
               if method == "salm" else
               f"Clean images, support, noise and protected images: baseline {method!r}",
               fontsize=10)
  return save(fig, path)


# -------------------------------------------------------- generator history ---


def plot_generator_history(history: Sequence[Mapping[str, Any]], path: str) -> str:
  """Per generator round: surrogate accuracies, its training loss, the noise's support."""
  if not history:
    raise ValueError("plot_generator_history: the history is empty (no rounds in metrics.jsonl).")
  rounds = [h["round"] for h in history]
  col = lambda k: [_nan(h.get(k)) for h in history]
  fig = Figure(figsize=(12, 3.4))
  ax_acc, ax_loss, ax_frac = fig.subplots(1, 3)
  ax_acc.plot(rounds, col("accuracy"), "o-", label="on x+δ (stop criterion)")
  ax_acc.plot(rounds, col("train_accuracy"), "s--", label="while training")
  ax_acc.set(title="Surrogate accuracy", xlabel="round", ylabel="accuracy", ylim=(0, 1.02))
  ax_loss.plot(rounds, col("train_loss"), "o-", color="tab:red")
  ax_loss.set(title="Surrogate training loss", xlabel="round", ylabel="loss")
  ax_frac.plot(rounds, col("frac_masked"), "o-", label="in the mask")
  ax_frac.plot(rounds, col("frac_nonzero"), "s--", label="noise ≠ 0")
  ax_frac.set(title="Fraction of pixels", xlabel="round", ylabel="fraction", ylim=(0, None))
  for ax in (ax_acc, ax_frac):
    ax.legend(fontsize=8)
  for ax in (ax_acc, ax_loss, ax_frac):
    ax.grid(alpha=0.3)
    ax.set_xticks(rounds if len(rounds) <= 20 else ax.get_xticks())
  fig.suptitle("Noise generator, per round", fontsize=11)
  fig.tight_layout()
  return save(fig, path)


# ----------------------------------------------------------- victim curves ---


def _curve_groups(curves: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list]:
  groups: dict[tuple[str, str], list] = {}
  for c in curves:
    groups.setdefault((c["arch"], c["defense"]), []).append(c)
  return groups


def _grid(fig: Figure, n: int, max_cols: int = 4) -> list:
  cols = min(n, max_cols)
  rows = -(-n // cols)
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  for ax in axes[n:]:
    ax.set_visible(False)
  return list(axes[:n])


def _metric_label(metric: str) -> str:
  """'test_acc' -> 'test ACC', 'train_loss' -> 'train loss'."""
  words = {"acc": "ACC", "auc": "AUC"}
  return " ".join(words.get(w, w) for w in metric.split("_"))


def plot_victim_curves(curves: Sequence[Mapping[str, Any]], path: str, *,
                       metric: str = "test_acc") -> str:
  """`metric` per epoch of the clean victim vs the protected victims, one panel per arch × defense.

  `curves` is evaluation/curves.json: dicts with arch, defense, victim
  ('clean' / 'protected'), poison_fraction, epoch and the per-epoch metrics.
  """
  if not curves:
    raise ValueError("plot_victim_curves: no curves (evaluation/curves.json is empty).")
  if metric not in curves[0]:
    raise ValueError(f"plot_victim_curves: metric {metric!r} not in the curves; they hold "
                     f"{sorted(k for k in curves[0] if isinstance(curves[0][k], list))}.")
  groups = _curve_groups(curves)
  cols = min(len(groups), 4)
  fig = Figure(figsize=(3.6 * cols + 0.6, 3.0 * -(-len(groups) // cols) + 0.6))
  colors = ["tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
  for ax, ((arch, spec), group) in zip(_grid(fig, len(groups)), groups.items()):
    k = 0
    for c in group:
      y = [_nan(v) for v in c[metric]]
      if c["victim"] == "clean":
        ax.plot(c["epoch"], y, "-", color="tab:blue", lw=2, label="clean data")
      else:
        frac = c.get("poison_fraction")
        label = "protected" + (f" (p={frac:g})" if frac is not None and frac != 1.0 else "")
        ax.plot(c["epoch"], y, "--", color=colors[k % len(colors)], lw=2, label=label)
        k += 1
    ax.set_title(f"{arch} | defense: {spec}", fontsize=9)
    ax.set(xlabel="epoch", ylabel=_metric_label(metric))
    if not metric.endswith("loss"):
      ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
  name = _metric_label(metric)
  fig.suptitle(f"{name[0].upper() + name[1:]} of victims trained on clean vs protected data",
               fontsize=11)
  fig.tight_layout()
  return save(fig, path)


# ----------------------------------------------------------------- utility ---

_UTILITY = (("psnr", "PSNR (dB)", "higher = closer to clean"),
            ("ssim", "SSIM", "1 = identical"),
            ("frac_changed", "fraction of pixels changed", "lower = sparser"))


def _is_per_image(stats: Mapping[str, Any]) -> bool:
  first = next(iter(stats.values()), None)
  return isinstance(first, Mapping) and np.ndim(first.get("psnr")) == 1


def plot_utility(stats: Mapping[str, Mapping[str, Any]], path: str) -> str:
  """PSNR, SSIM and fraction of pixels changed of each perturbed split.

  `stats` maps split -> either the dataset figures of the manifest's
  split_stats (drawn as bars) or `utility.per_image_stats` arrays (drawn as
  histograms; unchanged images, PSNR = inf, are counted in the title).
  """
  if not stats:
    raise ValueError("plot_utility: no split statistics (nothing was perturbed?).")
  per_image = _is_per_image(stats)
  fig = Figure(figsize=(12, 3.4))
  axes = fig.subplots(1, len(_UTILITY))
  splits = list(stats)
  for ax, (key, label, hint) in zip(axes, _UTILITY):
    if per_image:
      for s in splits:
        v = np.asarray(stats[s][key], np.float64)
        finite = v[np.isfinite(v)]
        ax.hist(finite, bins=30, alpha=0.6, label=f"{s} ({len(finite)}/{len(v)} img)")
      ax.set(xlabel=label, ylabel="images")
      ax.legend(fontsize=7)
    else:
      vals = [_nan(stats[s].get(key)) for s in splits]
      bars = ax.bar(splits, vals, color="tab:green", width=0.5)
      ax.bar_label(bars, labels=[("" if math.isnan(v) else f"{v:.3g}") for v in vals],
                   fontsize=8)
      for i, v in enumerate(vals):
        if math.isnan(v):
          ax.text(i, 0, "n/a\n(no image\nchanged)" if key == "psnr" else "n/a",
                  ha="center", va="bottom", fontsize=8)
      ax.set(ylabel=label, xlim=(-0.75, len(splits) - 0.25),
             ylim=(0, np.nanmax(vals + [1e-9]) * 1.2 if key != "ssim" else 1.1))
    ax.set_title(f"{label}\n({hint})", fontsize=9)
    ax.grid(alpha=0.3)
  what = "per image" if per_image else "mean per split"
  fig.suptitle(f"Distortion of the protected images ({what})", fontsize=11)
  fig.tight_layout()
  return save(fig, path)


# ------------------------------------------------------------------- sweep ---


def plot_sweep(table: Mapping[str, Any], path: str) -> str:
  """The ablation curve: victims and distortion against the swept parameter.

  `table` is sweep/table.json; its `curve` holds one entry per value
  (`salm_jax.sweep.curve`). Four panels: victim test AUC (the zoo mean ± std
  over seeds, the worst victim, each victim, the clean zoo mean), the zoo's
  test ACC, PSNR and SSIM (mean and lowest image), and the pixels changed
  (mean and most-changed image) with the generation time. The x axis is
  logarithmic when the (positive) values span more than a decade.
  """
  points = sorted(table.get("curve") or [], key=lambda p: p["value"])
  if not points:
    raise ValueError("plot_sweep: the sweep table has no points.")
  param = table.get("parameter", "value")
  x = np.array([float(p["value"]) for p in points])
  get = lambda key: np.array([_nan(p.get(key)) for p in points])
  fig = Figure(figsize=(11, 7.5))
  (ax_auc, ax_acc), (ax_img, ax_px) = fig.subplots(2, 2)
  archs = sorted({a for p in points for a in p.get("auc", {})})
  for i, arch in enumerate(archs):
    ax_auc.plot(x, [_nan(p.get("auc", {}).get(arch)) for p in points], ".-", color=f"C{i}",
                alpha=0.45, lw=1, label=arch)
  if archs:
    ax_auc.errorbar(x, get("zoo_auc"), yerr=np.nan_to_num(get("zoo_auc_std")), fmt="o-",
                    color="k", lw=2, capsize=3, label="zoo mean ± std over seeds")
    ax_auc.plot(x, get("worst_auc"), "v--", color="tab:red", label="worst victim")
    ax_auc.plot(x, get("clean_zoo_auc"), ":", color="gray", lw=2, label="zoo mean, clean data")
    ax_acc.plot(x, get("zoo_acc"), "o-", color="k", label="zoo mean")
    ax_auc.legend(fontsize=7)
  else:
    ax_auc.text(0.5, 0.5, "no victims evaluated", ha="center", va="center",
                transform=ax_auc.transAxes)
  ax_auc.axhline(0.5, color="gray", lw=0.8)
  ax_auc.set(title="Victim test AUC (last epoch; lower protects more)", ylabel="test AUC",
             ylim=(0.2, 1.0))
  ax_acc.set(title="Victim test ACC (last epoch), zoo mean", ylabel="test ACC", ylim=(0, 1.02))
  ax_img.plot(x, get("psnr"), "o-", color="tab:green", label="PSNR (changed images)")
  ax_img.set(title="Image quality of the written file", ylabel="PSNR (dB)")
  ax_ssim = ax_img.twinx()
  ax_ssim.plot(x, get("ssim"), "s--", color="tab:purple", label="SSIM, mean")
  ax_ssim.plot(x, get("ssim_min"), "v:", color="tab:purple", label="SSIM, lowest image")
  ax_ssim.set_ylabel("SSIM")
  ax_img.legend(handles=ax_img.get_lines() + ax_ssim.get_lines(), fontsize=7)
  ax_px.plot(x, 100 * get("frac_changed"), "o-", color="tab:blue", label="pixels changed, mean")
  ax_px.plot(x, 100 * get("frac_changed_max"), "^:", color="tab:blue",
             label="pixels changed, most-changed image")
  ax_px.set(title="Sparsity and cost", ylabel="pixels changed (%)")
  ax_time = ax_px.twinx()
  ax_time.plot(x, get("generator_seconds"), "s--", color="tab:orange", label="generation time")
  ax_time.set_ylabel("generation (s)")
  ax_px.legend(handles=ax_px.get_lines() + ax_time.get_lines(), fontsize=7)
  for ax in (ax_auc, ax_acc, ax_img, ax_px):
    ax.grid(alpha=0.3)
    ax.set_xlabel(param)
    if np.all(x > 0) and x.max() / x.min() > 10:
      ax.set_xscale("log")
  seeds = table.get("seeds") or []
  fig.suptitle(f"Sweep over {param} ({len(seeds)} seed{'s' * (len(seeds) != 1)})", fontsize=11)
  fig.tight_layout()
  return save(fig, path)


__all__ = ["plot_preview", "plot_generator_history", "plot_victim_curves", "plot_utility",
           "plot_sweep", "save"]
