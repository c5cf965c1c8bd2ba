"""Methods × victims on real MedMNIST, resumable: the rows behind docs/RESULTS.md's tables.

For every named variant (a config under configs/ and its overrides,
`VARIANTS`) and seed, the `protect` stage writes a protected copy into
`<workdir>/<dataset>/<variant>/seed<k>/` (kept when its manifest exists), and
each victim architecture is trained on it with the config's recipe and
tested on the clean test split. Distortion (PSNR, SSIM, pixels changed, L∞)
is the manifest's, measured on the written uint8 file, and each row keeps the
file's MD5. Seed k sets the noise and the victim's initialization.

Every finished (variant, seed, victim) row is written to `--json_out` at once
and rows already there are skipped, so a killed run continues where it
stopped. `python -m benchmarks.results_page` turns the committed rows into
docs/RESULTS.md.

  python -m benchmarks.frontier --dataset=breastmnist --seeds=0,1,2 \\
      --variants=clean,salm,em --json_out=docs/results/breastmnist.json
  python -m benchmarks.frontier --size=full --seeds=0 --json_out=/tmp/breastmnist_full_s0.json
"""
from __future__ import annotations

import ast
import functools
import importlib
import os
import time

from absl import app, flags, logging
import jax

from benchmarks import frontier_rows
from salm_jax import atomic
from salm_jax import compile_cache
from salm_jax import data as data_lib
from salm_jax import protect as protect_lib
from salm_jax import workdir as wd
from salm_jax.evaluation import victim

_DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                             "data", "medmnist")

# name -> (config module under configs/, overrides); None: victims on the clean data.
# '{seed_dir:NAME}' is the protected copy of variant NAME at the same seed (a control
# reads the support of the run it controls). Rows keep the name they were made under.
_SSIM95, _35DB = {"noise.lattice.min_ssim": 0.95}, {"noise.budget": "psnr", "noise.target_psnr": 35.0}
_NO_FLOOR = {"noise.lattice.min_ssim": 0.0}
_INDEX = {"noise.support_ties": "index"}
VARIANTS: dict[str, tuple[str, dict] | None] = {
    "clean": None,
    "salm": ("salm", {}),                                             # the default
    "salm_sample": ("salm", {"noise.mode": "sample"}),
    "random_salm": ("random_noise", {"noise.random.support_from": "{seed_dir:salm}"}),
    "random": ("random_noise", {}),                                   # on a random support
    "salm_fixed": ("salm_fixed", {}),
    "random_fixed": ("random_noise", {"noise.random.support_from": "{seed_dir:salm_fixed}"}),
    "salm_eot": ("salm", {"noise.eot_samples": 4}),                   # 4 crops + flips a step
    "salm_ensemble": ("salm", {"surrogate.ensemble": ("small_cnn:16", "resnet18:16", "vgg16:16")}),
    "salm_ar": ("salm", {"noise.init": "ar"}),                        # from an AR pattern
    "salm_lsp": ("salm", {"noise.init": "lsp"}),                      # from an LSP pattern
    "salm_index_ties": ("salm", _INDEX),                              # support in raster order
    "random_salm_index_ties": ("random_noise", {
        "noise.random.support_from": "{seed_dir:salm_index_ties}"}),
    "em": ("em", {}),
    "em_class": ("salm", {"noise.mask_ratio": 1.0}),                  # class-wise EM, 8/255
    "em_equal_psnr": ("em", {"noise.budget": "psnr", "noise.target_psnr": 35.6}),
    "ops": ("ops", {}),
    "ops_equal_psnr": ("ops", {"noise.ops.epsilon": 117 / 255}),
    "ar": ("ar", {}),
    "lsp": ("lsp", {}),
    "adversarial": ("adversarial", {}),
    "random_adversarial": ("random_noise", {"noise.random.support_from": "{seed_dir:adversarial}"}),
    "flat": ("flat", {}),
    "lattice": ("lattice", {}),
    "random_lattice": ("random_noise", {"noise.random.support_from": "{seed_dir:lattice}",
                                        "noise.random.magnitude": "source"}),
    "lattice_onesided_35db_ssim95": ("lattice", {"noise.lattice.bare": "largest", **_35DB}),
    "lattice_major_35db_ssim95": ("lattice", {"noise.lattice.bare": "smallest", **_35DB}),
    "lattice_busiest_ssim95": ("lattice", _35DB),
    "random_lattice_busiest_ssim95": ("random_noise", {
        "noise.random.support_from": "{seed_dir:lattice_busiest_ssim95}",
        "noise.random.magnitude": "source", "noise.mask_ratio": 0.0625, **_35DB}),
    "lattice_onesided_35db": ("lattice", {"noise.lattice.bare": "largest", **_NO_FLOOR, **_35DB}),
    "lattice_major_35db": ("lattice", {"noise.lattice.bare": "smallest", **_NO_FLOOR, **_35DB}),
    "lattice_onesided": ("lattice", {"noise.lattice.bare": "largest", **_NO_FLOOR,
                                     "noise.epsilon": 8 / 255}),
}

_DATASET = flags.DEFINE_string("dataset", "breastmnist", "MedMNIST flag (28 px).")
_SIZE = flags.DEFINE_enum("size", "cpu", ["cpu", "full"],
                          "cpu: the CPU configs (width-16 zoo, 20-epoch victims); full: their "
                          "',full' variant (width-64 ResNet-18 surrogate, full-width zoo, "
                          "MedMNIST's 100-epoch victims) for a GPU.")
_DATA_DIR = flags.DEFINE_string("data_dir", _DEFAULT_DATA, "Folder of the MedMNIST npz files.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Noise and victim seeds.")
_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), "Names from VARIANTS.")
_ARCHS = flags.DEFINE_list("archs", None, "Victims (default: the config's evaluation.archs).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/frontier", "Where protected copies go.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Rows file (resumable); required.")
_DEFENSE = flags.DEFINE_string("defense", "none",
                               "A defense the victims train with (salm_jax.evaluation.defenses "
                               "spec, e.g. 'crop_pad+hflip'); recorded in each row.")
_SET = flags.DEFINE_multi_string("set", [], "Extra override for every variant: field=value.")


def variant_config(name: str, dataset: str, seed: int, workdir: str):
  """The full config of one (variant, seed): the CPU config, the data, the overrides."""
  module, overrides = VARIANTS[name] or ("salm", {})
  arg = dataset + (",full" if _SIZE.value == "full" else "")
  config = importlib.import_module(f"configs.{module}").get_config(arg)
  config.seed = seed
  config.dataset.data_dir = os.path.abspath(_DATA_DIR.value)
  config.dataset.download = False
  config.tensorboard = False
  for field, value in {**overrides, **_extra()}.items():
    if _seed_dir_of(value):
      value = os.path.abspath(os.path.join(workdir, _seed_dir_of(value), f"seed{seed}",
                                           wd.PROTECTED))
    _assign(config, field, value)
  return config


def _assign(config, field: str, value) -> None:
  """Sets a dotted field, parsing strings from --set like the entry points' overrides."""
  *parents, leaf = field.split(".")
  node = config
  for p in parents:
    node = node[p]
  if isinstance(value, str) and not isinstance(node[leaf], str):
    value = type(node[leaf])(ast.literal_eval(value))  # numbers, tuples, dicts from --set
  node[leaf] = value


def _needs(name: str) -> list[str]:
  """Variants whose protected copy `name` reads ('{seed_dir:NAME}' in its overrides).

  They are made first when missing, so a control runs even where its SALM
  run's rows were resumed from an earlier machine and its files were not.
  """
  overrides = (VARIANTS[name] or ("", {}))[1]
  return [_seed_dir_of(v) for f, v in overrides.items() if _seed_dir_of(v) and f not in _extra()]


def _seed_dir_of(value) -> str | None:
  """NAME for an override value '{seed_dir:NAME}', else None."""
  prefix = "{seed_dir:"
  return value[len(prefix):-1] if isinstance(value, str) and value.startswith(prefix) else None


def _extra() -> dict[str, str]:
  """The --set overrides, field -> value string; they win over a variant's own."""
  return dict(s.split("=", 1) for s in _SET.value)


def protected_copy(name: str, config, workdir: str):
  """(dataset the victims train on, distortion stats, generation seconds) for one variant."""
  if VARIANTS[name] is None:
    return data_lib.load_from_config(config.dataset), {}, 0.0
  if not os.path.exists(wd.path(workdir, wd.DONE_PROTECT)):
    protect_lib.protect(config, workdir, overwrite=True, progress=False)
  manifest = wd.read_json(wd.path(workdir, wd.DONE_PROTECT))
  protected, _ = data_lib.read_protected(wd.path(workdir, wd.PROTECTED))
  stats = {**manifest["split_stats"]["train"], "md5": manifest["files"]["data"]["md5"]}
  return protected, stats, float(manifest["generator_seconds"])


def seed_copy(name: str, config, seed: int, root: str):
  """`protected_copy` of `name` at `seed` under `root`, after the copies it reads."""
  for needed in _needs(name):  # e.g. the SALM run whose support a control reuses
    protected_copy(needed, variant_config(needed, _DATASET.value, seed, root),
                   os.path.join(root, needed, f"seed{seed}"))
  return protected_copy(name, config, os.path.join(root, name, f"seed{seed}"))


def check_flags() -> None:
  """--json_out given and every --variants name known (also for the scripts that reuse
  these flags), before any work."""
  if not _JSON_OUT.value:
    raise app.UsageError("--json_out is required (rows are kept there and resumed from).")
  unknown = [v for v in _VARIANTS.value if v not in VARIANTS]
  if unknown:
    raise app.UsageError(f"unknown variants {unknown}; known: {list(VARIANTS)}")


def victim_row(ds, config, arch: str, seed: int) -> dict:
  """One victim trained on `ds`'s train split, tested on its clean val / test splits."""
  cfg = config.evaluation
  out = victim.train_victim(ds.splits["train"], ds.splits["val"], ds.splits["test"],
                            task=ds.task, num_classes=ds.num_classes, arch=arch, cfg=cfg,
                            defense=_DEFENSE.value, key=jax.random.PRNGKey(seed))
  return {"last": out["last"], "best_val": out["best_val"], "seconds": out["seconds"]}


def _row_key(name: str, seed: int, defense: str, model_kwargs: dict, arch: str) -> tuple:
  """`frontier_rows.row_key` of the row this run would write for `arch`."""
  return (name, seed, frontier_rows.victim_name(arch, model_kwargs.get(arch)), defense)


def main(argv):
  del argv
  check_flags()
  compile_cache.enable()  # as the entry points: victims compile once across runs
  rows = wd.read_json(_JSON_OUT.value)["rows"] if os.path.exists(_JSON_OUT.value) else []
  defense = _DEFENSE.value
  done = {frontier_rows.row_key(r) for r in rows}
  root = os.path.join(_WORKDIR.value, _DATASET.value)
  for seed in (int(s) for s in _SEEDS.value):  # seeds outermost: a cut-short run has seed 0
    for name in _VARIANTS.value:
      config = variant_config(name, _DATASET.value, seed, root)
      archs = _ARCHS.value or list(config.evaluation.archs)
      model_kwargs = config.evaluation.model_kwargs.to_dict()
      key = functools.partial(_row_key, name, seed, defense, model_kwargs)
      if all(key(a) in done for a in archs):
        continue
      t0 = time.time()
      ds, stats, gen_seconds = seed_copy(name, config, seed, root)
      logging.info("%s seed %d: protected copy ready in %.0f s", name, seed, time.time() - t0)
      for arch in archs:
        if key(arch) in done:
          continue
        row = {"dataset": _DATASET.value, "size": _SIZE.value, "variant": name, "seed": seed,
               "arch": arch, "defense": defense,
               "distortion": stats, "generator_seconds": gen_seconds,
               "overrides": {**(VARIANTS[name] or ("clean", {}))[1], **_extra()},
               "victim": {"epochs": config.evaluation.epochs,
                          "batch_size": config.evaluation.batch_size,
                          "model_kwargs": model_kwargs.get(arch, {})},
               **victim_row(ds, config, arch, seed)}
        rows.append(atomic.to_jsonable(row))
        done.add(key(arch))
        atomic.write_json(_JSON_OUT.value, {"machine": _machine(), "rows": rows})
        print(f"{name:14s} seed {seed} {arch:12s} AUC {row['last']['auc']:.3f} "
              f"ACC {row['last']['acc']:.3f}  PSNR {stats.get('psnr') or float('nan'):.2f} "
              f"changed {stats.get('frac_changed', 0):.3f}  ({row['seconds']:.0f} s)", flush=True)


def _machine() -> dict:
  import platform  # pylint: disable=g-import-not-at-top
  return {"platform": platform.platform(), "processor": platform.processor(),
          "cpus": os.cpu_count(), "jax": jax.__version__,
          "devices": [str(d) for d in jax.devices()],
          "device_kind": jax.devices()[0].device_kind}


if __name__ == "__main__":
  app.run(main)
