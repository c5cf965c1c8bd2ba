"""Clean-data victims with MedMNIST's recipe, next to MedMNIST v2's published numbers.

The victim is only a faithful stand-in for an unauthorized trainer if, on
clean data, it scores what MedMNIST's own benchmark scores. This script
trains `--arch` (ResNet-18 with the 28 px stem by default) with the recipe of
`salm_jax.evaluation.victim` (Adam 1e-3, batch 128, lr ×0.1 at 50% / 75% of the epochs)
on the real MedMNIST files and prints test ACC / AUC at the last and the
best-validation-AUC epoch beside the published ResNet-18 (28) results
(MedMNIST v2, Yang et al. 2023, Table 3), one row per seed and the mean over
seeds. It is a benchmark, not a CI test: at 100 epochs ResNet-18 needs a GPU
or a long CPU run.

  python benchmarks/clean_medmnist.py --datasets=breastmnist --epochs=100 --seeds=0,1,2
"""
from __future__ import annotations

import os
import time

from absl import app, flags, logging
import jax
import numpy as np

from salm_jax import atomic
from salm_jax.data import load_dataset
from salm_jax.evaluation import victim

PUBLISHED_RESNET18_28 = {  # MedMNIST v2, Table 3: ResNet-18 (28), test ACC / AUC
    "breastmnist": {"acc": 0.863, "auc": 0.901},
    "pneumoniamnist": {"acc": 0.854, "auc": 0.944},
}
_DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                            "data", "medmnist")

_DATASETS = flags.DEFINE_list("datasets", ["breastmnist", "pneumoniamnist"], "MedMNIST flags.")
_EPOCHS = flags.DEFINE_integer("epochs", 100, "Epochs (MedMNIST uses 100).")
_ARCH = flags.DEFINE_string("arch", "resnet18", "Model name from salm_jax.models.")
_WIDTH = flags.DEFINE_integer("width", None, "Model width (default: the model's own).")
_DATA_DIR = flags.DEFINE_string("data_dir", _DEFAULT_DIR, "Folder of the MedMNIST .npz files.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds of init and shuffling; one run per seed.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write every run (with history) here.")


def run_one(flag: str, ds, seed: int) -> dict:
  cfg = victim.victim_config()
  cfg.epochs = _EPOCHS.value
  cfg.model_kwargs = {_ARCH.value: {"width": _WIDTH.value}} if _WIDTH.value else {}
  t0 = time.time()
  out = victim.train_victim(ds.train, ds.val, ds.test, task=ds.task, num_classes=ds.num_classes,
                            arch=_ARCH.value, cfg=cfg, defense="none",
                            key=jax.random.key(seed), progress=True, desc=f"{flag} seed {seed}")
  out.pop("model", None)
  out["seconds"] = time.time() - t0
  return out


def _row(flag: str, seed: str, runs: list[dict]) -> str:
  """One table row: a single run (with its best-val epoch) or the mean of several."""
  mean = lambda part, m: float(np.mean([r[part][m] for r in runs]))
  best = f"{mean('best_val', 'acc'):.3f} / {mean('best_val', 'auc'):.3f}"
  if len(runs) == 1:
    best += f" (epoch {runs[0]['best_val']['epoch']})"
  pub = PUBLISHED_RESNET18_28.get(flag, {})
  return (f"| {flag} | {_ARCH.value} | {_EPOCHS.value} | {seed} | "
          f"{mean('last', 'acc'):.3f} / {mean('last', 'auc'):.3f} | {best} | "
          f"{pub.get('acc', float('nan')):.3f} / {pub.get('auc', float('nan')):.3f} | "
          f"{sum(r['seconds'] for r in runs) / 60:.1f} min |")


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  seeds = [int(s) for s in _SEEDS.value]
  print(f"arch={_ARCH.value} epochs={_EPOCHS.value} seeds={seeds} devices={jax.devices()} "
        f"jax={jax.__version__}", flush=True)
  datasets = {flag: load_dataset(flag, size=28, data_dir=_DATA_DIR.value, download=False)
              for flag in _DATASETS.value}  # read and checked once, not once per seed
  runs = []
  for seed in seeds:  # seeds outermost: a run cut short still has every dataset's first seed
    for flag in _DATASETS.value:
      runs.append({"dataset": flag, "arch": _ARCH.value, "epochs": _EPOCHS.value, "seed": seed,
                   **run_one(flag, datasets[flag], seed)})
      print(_row(flag, str(seed), runs[-1:]), flush=True)
      if _JSON_OUT.value:  # after every run, so a run cut short keeps what it finished
        atomic.write_json(_JSON_OUT.value, {"devices": [str(d) for d in jax.devices()],
                                            "jax": jax.__version__, "runs": runs})
  rows = []
  for flag in _DATASETS.value:
    mine = [r for r in runs if r["dataset"] == flag]
    rows += [_row(flag, str(r["seed"]), [r]) for r in mine]
    if len(mine) > 1:
      rows.append(_row(flag, "mean", mine))
  print("\n| dataset | arch | epochs | seed | test ACC / AUC (last) | "
        "test ACC / AUC (best val AUC) | published ResNet-18 (28) ACC / AUC | time |")
  print("|---|---|---|---|---|---|---|---|")
  print("\n".join(rows), flush=True)


if __name__ == "__main__":
  app.run(main)
