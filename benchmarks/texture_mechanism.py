"""What a victim trained on a one-sided texture scores clean images by.

Why: round five found that *which* class carries the texture decides whether
the small CNN is fooled, and in opposite directions on BreastMNIST and
PneumoniaMNIST. Our explanation (salm_jax/noise/texture_class.py): the victim
learns "fine structure → the textured class", and on clean test images its
score then follows each image's own local contrast. This script tests that
directly. For each (variant, seed, victim) it trains the victim on the
variant's protected copy (frontier's, made when missing), scores the *clean*
test split, and prints

- the victim's test AUC;
- ρ: the Spearman correlation, over the clean test images, between the
  victim's probability of the textured class and the image's local contrast
  (`texture_class.local_contrast`), and ρ within each class (the mean of the
  two), which no class difference can produce;
- the AUC of local contrast alone as a classifier of the textured class.

If the explanation holds, ρ is clearly positive for victims of the textured
copies, and not for the same victims trained on clean images (`clean`).
The textured class is read from the `--textured_from` variant's written file
(the class whose training images changed), so `clean` rows use the same one.

  python -m benchmarks.texture_mechanism --dataset=breastmnist --seeds=0,1,2 \\
      --variants=clean,lattice_busiest_ssim95 --archs=small_cnn \\
      --json_out=docs/results/texture_mechanism.json
"""
from __future__ import annotations

import os

from absl import app, flags
import jax
import numpy as np

from benchmarks import frontier
from salm_jax import atomic
from salm_jax import compile_cache
from salm_jax import workdir as wd
from salm_jax.data.dataset import as_float
from salm_jax.evaluation import metrics, victim
from salm_jax.noise import texture_class

_TEXTURED_FROM = flags.DEFINE_string("textured_from", "lattice_busiest_ssim95",
                                     "The variant whose written file names the textured class.")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman's ρ (Pearson's r of the ranks, ties averaged); NaN if either is constant."""
  ra, rb = (np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(np.float64)
            for v in (a, b))
  ra, rb = (_average_ties(v, r) for v, r in ((a, ra), (b, rb)))
  if ra.std() == 0 or rb.std() == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def _average_ties(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
  _, inverse = np.unique(values, return_inverse=True)
  sums = np.bincount(inverse, weights=ranks)
  return (sums / np.bincount(inverse))[inverse]


def textured_class(clean_train, protected_train) -> int:
  """The class most of whose training images the texture changed."""
  changed = (clean_train.images != protected_train.images).reshape(len(clean_train), -1).any(1)
  labels = np.asarray(clean_train.labels)[:, 0]
  return int(np.argmax([changed[labels == c].mean() if (labels == c).any() else 0.0
                        for c in range(labels.max() + 1)]))


def row(ds_clean, name: str, seed: int, arch: str, textured: int, contrast: np.ndarray) -> dict:
  """One victim on `name`'s copy at `seed`, scored on the clean test split."""
  dataset = frontier._DATASET.value  # pylint: disable=protected-access
  root = os.path.join(frontier._WORKDIR.value, dataset)  # pylint: disable=protected-access
  config = frontier.variant_config(name, dataset, seed, root)
  train_on, _, _ = frontier.seed_copy(name, config, seed, root)
  test = ds_clean.splits["test"]
  out = victim.train_victim(train_on.splits["train"], ds_clean.splits["val"], test,
                            task=ds_clean.task, num_classes=ds_clean.num_classes, arch=arch,
                            cfg=config.evaluation, key=jax.random.PRNGKey(seed))
  scores = victim.make_predict_fn(out["model"], ds_clean.task)(as_float(test.images))
  p_textured = np.asarray(scores)[:, textured]
  labels = np.asarray(test.labels)[:, 0]
  within = [spearman(p_textured[labels == c], contrast[labels == c]) for c in np.unique(labels)]
  return {"dataset": dataset, "variant": name, "seed": seed, "arch": arch,
          "textured_class": textured, "auc": out["last"]["auc"], "acc": out["last"]["acc"],
          "rho": spearman(p_textured, contrast), "rho_within_class": float(np.mean(within)),
          "contrast_auc_for_textured": metrics.binary_auc(labels == textured, contrast)}


def _mean_std(values: list[float]) -> str:
  v = np.asarray(values, np.float64)
  return f"{v.mean():+.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:+.3f}"


def markdown(rows: list[dict]) -> str:
  """Per (dataset, variant, victim): test AUC and ρ, mean ± std (ddof 1, as frontier_report)
  over the seeds present."""
  groups: dict[tuple, list[dict]] = {}
  for r in rows:
    groups.setdefault((r["dataset"], r["variant"], r["arch"]), []).append(r)
  head = ("dataset", "variant", "victim", "seeds", "test AUC",
          "ρ (textured-class score, local contrast)", "ρ within each class")
  table = [head, ("---",) * len(head)]
  for (dataset, variant, arch), g in groups.items():
    table.append((dataset, variant, arch, str(len(g)),
                  _mean_std([r["auc"] for r in g]).lstrip("+"),
                  *(_mean_std([r[k] for r in g]) for k in ("rho", "rho_within_class"))))
  return "".join("| " + " | ".join(cells) + " |\n" for cells in table)


def main(argv):
  del argv
  frontier.check_flags()
  compile_cache.enable()
  dataset = frontier._DATASET.value  # pylint: disable=protected-access
  root = os.path.join(frontier._WORKDIR.value, dataset)  # pylint: disable=protected-access
  path = frontier._JSON_OUT.value  # pylint: disable=protected-access
  rows = wd.read_json(path)["rows"] if os.path.exists(path) else []
  done = {(r["dataset"], r["variant"], r["seed"], r["arch"]) for r in rows}
  # The clean data and its test images' contrast are the same for every seed: read once.
  ds_clean, _, _ = frontier.protected_copy("clean", frontier.variant_config(
      "clean", dataset, 0, root), root)
  contrast = texture_class.local_contrast(ds_clean.splits["test"].images)
  for seed in (int(s) for s in frontier._SEEDS.value):  # pylint: disable=protected-access
    ref = frontier.variant_config(_TEXTURED_FROM.value, dataset, seed, root)
    textured_on, _, _ = frontier.seed_copy(_TEXTURED_FROM.value, ref, seed, root)
    textured = textured_class(ds_clean.splits["train"], textured_on.splits["train"])
    for name in frontier._VARIANTS.value:  # pylint: disable=protected-access
      for arch in frontier._ARCHS.value or ["small_cnn"]:  # pylint: disable=protected-access
        if (dataset, name, seed, arch) in done:
          continue
        r = row(ds_clean, name, seed, arch, textured, contrast)
        rows.append(atomic.to_jsonable(r))
        atomic.write_json(path, {"rows": rows})
        print(f"{dataset} {name:28s} seed {seed} {arch:11s} AUC {r['auc']:.3f}  ρ {r['rho']:+.3f}"
              f"  ρ within class {r['rho_within_class']:+.3f}  (contrast alone: AUC "
              f"{r['contrast_auc_for_textured']:.3f} for class {textured})", flush=True)
  print(markdown(rows), end="")


if __name__ == "__main__":
  app.run(main)
