"""Which model-free class-wise patterns does each victim learn as a shortcut?

A probe behind issue 9's transfer question, not a protection method: fixed,
hand-made class-wise patterns of ±ε on 10% of the pixels are added to
BreastMNIST's training images (as uint8), and victims are trained on them
with the CPU config's recipe and tested on the clean test split. If a victim
ignores even a pattern that is identical across a class, no sparse noise of
that budget can be expected to stop it.

Patterns (binary tasks), on a support covering 10% of the pixels: with
`--support=random` (default), `--blocks`×`--blocks` squares at random places
(seeded); with `--support=smooth`, the single pixels where the training
images are locally flattest (`salm_jax.noise.flat_support.flat_support`, one
support for every image), where a pattern should stand out most from the
image itself:
  signs     random ±1 per pixel for class 0, the opposite for class 1
  texture   a checkerboard for class 0, vertical stripes for class 1
  onesided  a checkerboard for class 0, nothing for class 1

  python -m benchmarks.shortcut_probe --patterns=signs,texture,onesided --eps=8,32 \\
      --archs=small_cnn --json_out=docs/results/shortcut_probe.json
"""
from __future__ import annotations

import os

from absl import app, flags
import jax
import numpy as np

from configs import salm as salm_config
from salm_jax import atomic
from salm_jax import workdir as wd
from salm_jax.data import load_dataset
from salm_jax.data.dataset import Split
from salm_jax.evaluation import utility, victim
from salm_jax.noise import flat_support

_DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                             "data", "medmnist")
_PATTERNS = flags.DEFINE_list("patterns", ["signs", "texture", "onesided"], "Patterns to add.")
_EPS = flags.DEFINE_list("eps", ["8"], "Amplitudes in uint8 units.")
_ARCHS = flags.DEFINE_list("archs", ["small_cnn"], "Victims (CPU zoo sizes).")
_BLOCKS = flags.DEFINE_integer("blocks", 4, "Side of the support's squares (pixels).")
_SUPPORT = flags.DEFINE_enum("support", "random", ["random", "smooth"],
                             "Where the pattern goes (see the module docstring).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the support, the signs and the victims.")
_DATA_DIR = flags.DEFINE_string("data_dir", _DEFAULT_DATA, "Folder of breastmnist.npz.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Rows file (appended to, resumable).")


def support(rng: np.random.Generator, size: int, fraction: float, block: int) -> np.ndarray:
  """bool (size, size): random block×block squares until `fraction` of the pixels is covered."""
  mask = np.zeros((size, size), bool)
  while mask.mean() < fraction:
    i, j = rng.integers(0, size - block + 1, 2)
    mask[i:i + block, j:j + block] = True
  return mask


def _blocks() -> int:
  """The square side a row records: 1 for the single pixels of the smooth support."""
  return _BLOCKS.value if _SUPPORT.value == "random" else 1


def pattern(name: str, rng: np.random.Generator, size: int, block: int,
            mask: np.ndarray | None = None) -> np.ndarray:
  """(2, size, size) in {-1, 0, 1}: the pattern of class 0 and of class 1."""
  mask = support(rng, size, 0.1, block) if mask is None else mask
  yy, xx = np.mgrid[:size, :size]
  checker = np.where((yy + xx) % 2 == 0, 1, -1)
  if name == "signs":
    signs = rng.choice([-1, 1], (size, size))
    return np.stack([mask * signs, -(mask * signs)])
  if name == "texture":
    return np.stack([mask * checker, mask * np.where(xx % 2 == 0, 1, -1)])
  if name == "onesided":
    return np.stack([mask * checker, np.zeros((size, size), int)])
  raise ValueError(f"unknown pattern {name!r}; expected signs, texture or onesided.")


def run_one(ds, name: str, eps: int, arch: str) -> dict:
  rng = np.random.default_rng(_SEED.value)
  train = ds.splits["train"]
  mask = (flat_support.flat_support(train.images[..., None], 0.1)
          if _SUPPORT.value == "smooth" else None)
  pat = pattern(name, rng, ds.image_size, _BLOCKS.value, mask)[train.labels[:, 0]]
  clean = train.images.astype(np.int16)
  noisy = np.clip(clean + eps * pat.reshape(clean.shape), 0, 255).astype(np.uint8)
  cfg = salm_config.get_config("breastmnist").evaluation
  out = victim.train_victim(Split(noisy, train.labels), ds.splits["val"], ds.splits["test"],
                            task=ds.task, num_classes=ds.num_classes, arch=arch, cfg=cfg,
                            key=jax.random.PRNGKey(_SEED.value))
  return {"pattern": name, "eps": eps, "arch": arch, "seed": _SEED.value, "blocks": _blocks(),
          "support": _SUPPORT.value, "distortion": utility.image_stats(train.images, noisy),
          "last": out["last"], "seconds": out["seconds"]}


def main(argv):
  del argv
  ds = load_dataset("breastmnist", data_dir=_DATA_DIR.value, download=False)
  path = _JSON_OUT.value
  rows = wd.read_json(path)["rows"] if path and os.path.exists(path) else []
  key = lambda r: (r["pattern"], r["eps"], r["arch"], r["seed"], r["blocks"],
                   r.get("support", "random"))
  done = {key(r) for r in rows}
  for name in _PATTERNS.value:
    for eps in (int(e) for e in _EPS.value):
      for arch in _ARCHS.value:
        if (name, eps, arch, _SEED.value, _blocks(), _SUPPORT.value) in done:
          continue
        row = run_one(ds, name, eps, arch)
        rows.append(atomic.to_jsonable(row))
        if path:
          atomic.write_json(path, {"rows": rows})
        d = row["distortion"]
        print(f"{name:9s} {_SUPPORT.value:6s} ±{eps:3d}/255 {arch:11s} PSNR {d['psnr']:.2f} changed "
              f"{d['frac_changed']:.3f}  test AUC {row['last']['auc']:.3f} "
              f"ACC {row['last']['acc']:.3f}", flush=True)


if __name__ == "__main__":
  app.run(main)
