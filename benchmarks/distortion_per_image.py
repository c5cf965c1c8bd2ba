"""Distortion of `benchmarks/frontier.py`'s protected copies, image by image.

Why: a one-sided pattern leaves most images untouched, and the rows' SSIM is
the mean over *all* images, each untouched one counting 1.0. Issue 9's floor
("never below PSNR 35 dB or SSIM 0.95") is about the images that were
changed, so this prints, per (variant, seed), the PSNR and SSIM of the changed
images (mean and lowest) beside the all-image mean, read from the written
uint8 files, and how much of the pattern is left at full strength: the share
of the changed pixels that moved by the file's L∞, and their mean change (an
SSIM floor lowers dots; its modes lower different ones). It uses frontier's
flags and protected copies (made first when missing, as frontier would).

  python -m benchmarks.distortion_per_image --dataset=breastmnist --seeds=0 \\
      --variants=lattice_onesided_35db,lattice_major_35db --json_out=/tmp/distortion.json
"""
from __future__ import annotations

import os

from absl import app
import numpy as np

from benchmarks import frontier
from salm_jax import atomic
from salm_jax import data as data_lib
from salm_jax import workdir as wd
from salm_jax.evaluation import utility


def row(name: str, seed: int, clean: np.ndarray) -> dict:
  """Per-image figures of one (variant, seed)'s training split against the `clean` one."""
  dataset = frontier._DATASET.value  # pylint: disable=protected-access
  root = os.path.join(frontier._WORKDIR.value, dataset)  # pylint: disable=protected-access
  config = frontier.variant_config(name, dataset, seed, root)
  protected, _, _ = frontier.seed_copy(name, config, seed, root)
  written = protected.splits["train"].images
  per = utility.per_image_stats(clean, written)
  changed = np.isfinite(per["psnr"])
  if not changed.any():
    raise ValueError(f"{name} seed {seed} changed no image: nothing to measure.")
  moved = np.abs(written.astype(np.int16) - clean.astype(np.int16))
  moved = moved[moved > 0]
  return {"dataset": dataset, "variant": name, "seed": seed, "n_images": int(len(changed)),
          "n_changed_images": int(changed.sum()),
          "psnr_changed_mean": float(per["psnr"][changed].mean()),
          "psnr_changed_min": float(per["psnr"][changed].min()),
          "ssim_all_mean": float(per["ssim"].mean()),
          "ssim_changed_mean": float(per["ssim"][changed].mean()),
          "ssim_changed_min": float(per["ssim"][changed].min()),
          "ssim_changed_below_0.95": float((per["ssim"][changed] < 0.95).mean()),
          "linf_uint8": int(per["linf_uint8"].max()),
          "pixels_at_linf": float((moved == moved.max()).mean()),
          "mean_change_uint8": float(moved.mean())}


def _maybe(r: dict, field: str, spec: str) -> str:
  """`field` formatted, or '–' in rows made before it was recorded."""
  return "–" if r.get(field) is None else format(r[field], spec)


def markdown(rows: list[dict]) -> str:
  head = ("| dataset | variant | seed | changed images | PSNR changed, mean / lowest | SSIM all "
          "images | SSIM changed, mean / lowest | changed images with SSIM < 0.95 | L∞ | "
          "changed pixels at L∞ | mean change |")
  lines = [head, "|" + "---|" * 11]
  for r in rows:
    lines.append(
        f"| {r['dataset']} | {r['variant']} | {r['seed']} | {r['n_changed_images']} of "
        f"{r['n_images']} | {r['psnr_changed_mean']:.2f} / {r['psnr_changed_min']:.2f} | "
        f"{r['ssim_all_mean']:.4f} | {r['ssim_changed_mean']:.4f} / {r['ssim_changed_min']:.4f}"
        f" | {r['ssim_changed_below_0.95']:.1%} | {r['linf_uint8']} | "
        f"{_maybe(r, 'pixels_at_linf', '.1%')} | {_maybe(r, 'mean_change_uint8', '.1f')} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  frontier.check_flags()
  out = frontier._JSON_OUT.value  # pylint: disable=protected-access
  clean = data_lib.load_from_config(frontier.variant_config(
      "clean", frontier._DATASET.value, 0, "").dataset).splits["train"].images  # pylint: disable=protected-access
  rows = wd.read_json(out)["rows"] if os.path.exists(out) else []
  key = lambda r: (r["dataset"], r["variant"], r["seed"])
  for seed in (int(s) for s in frontier._SEEDS.value):  # pylint: disable=protected-access
    for name in frontier._VARIANTS.value:  # pylint: disable=protected-access
      if frontier.VARIANTS[name] is None:
        continue  # 'clean' has no noise
      new = row(name, seed, clean)
      rows = [r for r in rows if key(r) != key(new)] + [new]
      atomic.write_json(out, {"rows": rows})
  print(markdown(rows))


if __name__ == "__main__":
  app.run(main)
