"""Clean-data victims with MedMNIST's recipe, next to MedMNIST v2's published numbers.

The victim is only a faithful stand-in for an unauthorized trainer if, on
clean data, it scores what MedMNIST's own benchmark scores. This script
trains `--arch` (ResNet-18 with the 28 px stem by default) with the recipe of
`salm_jax.victim` (Adam 1e-3, batch 128, lr ×0.1 at 50% / 75% of the epochs)
on the real MedMNIST files and prints test ACC / AUC at the last and the
best-validation-AUC epoch beside the published ResNet-18 (28) results
(MedMNIST v2, Yang et al. 2023, Table 3). It is a benchmark, not a CI test:
at 100 epochs ResNet-18 needs a GPU or a long CPU run.

  python benchmarks/clean_medmnist.py --datasets=breastmnist --epochs=100
"""
from __future__ import annotations

import os
import time

from absl import app, flags, logging
import jax

from salm_jax import victim
from salm_jax.data import load_dataset

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
_SEED = flags.DEFINE_integer("seed", 0, "Seed of init and shuffling.")


def run_one(flag: str) -> dict:
  ds = load_dataset(flag, size=28, data_dir=_DATA_DIR.value, download=False)
  cfg = victim.victim_config()
  cfg.epochs = _EPOCHS.value
  cfg.model_kwargs = {_ARCH.value: {"width": _WIDTH.value}} if _WIDTH.value else {}
  t0 = time.time()
  out = victim.train_victim(ds.train, ds.val, ds.test, task=ds.task, num_classes=ds.num_classes,
                            arch=_ARCH.value, cfg=cfg, defense="none",
                            key=jax.random.key(_SEED.value), progress=True, desc=flag)
  out["seconds"] = time.time() - t0
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  print(f"arch={_ARCH.value} epochs={_EPOCHS.value} seed={_SEED.value} "
        f"devices={jax.devices()}")
  rows = []
  for flag in _DATASETS.value:
    out = run_one(flag)
    pub = PUBLISHED_RESNET18_28.get(flag, {})
    last, best = out["last"], out["best_val"]
    rows.append(
        f"| {flag} | {_ARCH.value} | {_EPOCHS.value} | {last['acc']:.3f} / {last['auc']:.3f} | "
        f"{best['acc']:.3f} / {best['auc']:.3f} (epoch {best['epoch']}) | "
        f"{pub.get('acc', float('nan')):.3f} / {pub.get('auc', float('nan')):.3f} | "
        f"{out['seconds'] / 60:.1f} min |")
    print(rows[-1], flush=True)
  print("\n| dataset | arch | epochs | test ACC / AUC (last) | test ACC / AUC (best val AUC) | "
        "published ResNet-18 (28) ACC / AUC | time |")
  print("|---|---|---|---|---|---|---|")
  print("\n".join(rows))


if __name__ == "__main__":
  app.run(main)
