"""Protection against distortion on real MedMNIST: method × seed × victim, resumable.

Issue 9's evidence. For every named variant (a method and its config
overrides, `VARIANTS`) and seed, the real `protect` stage writes a protected
copy of the dataset into `<workdir>/<dataset>/<variant>/seed<k>/` (skipped
when its manifest already exists), and every victim architecture of the
config's zoo is trained on it with MedMNIST's recipe and tested on the clean
test split. Distortion (PSNR, SSIM, fraction of pixels changed, L∞) is read
from the manifest, i.e. measured on the written uint8 file. The victim seed
equals the noise seed, so the clean row of seed k and the protected rows of
seed k start from the same initialization.

Every finished (variant, seed, arch) row is written to `--json_out` at once,
and rows already there are skipped, so a killed run continues where it
stopped. `benchmarks/frontier_report.py` turns the JSON into tables and
the protection-vs-distortion figure.

  python -m benchmarks.frontier --dataset=breastmnist --seeds=0,1,2 \\
      --variants=clean,em,salm_class --json_out=docs/results/breastmnist_cpu.json
  # paper-sized, on a GPU (benchmarks/device/frontier_gpu.sh):
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
from salm_jax.noise import lattice

_DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                             "data", "medmnist")

# name -> (config module under configs/, overrides). 'clean' trains victims on the
# clean data. SALM's variants start from configs/salm_class.py (class-wise SALM at
# 8/255 on real data), so they keep the base they were measured with when the
# default changes. '{seed_dir:NAME}' in a value is the workdir of variant NAME at the
# same seed (the random control reads the support of the SALM run it controls).
_OLD_SALM = {"noise.mask_schedule": "step", "noise.support": "union", "noise.mask_ratio": 0.2,
             "noise.mode": "sample", "noise.mask_sharing": "image", "noise.init": "auto",
             "noise.pretrain_steps": 0, "noise.keep_pretrained": True, "noise.train_steps": 2,
             "noise.min_rounds": 10, "noise.max_rounds": 15}
_CLASS_SALM = {"noise.mode": "class", "noise.mask_schedule": "fixed", "noise.support": "strict",
               "noise.mask_ratio": 0.1, "noise.init": "sign", "noise.pretrain_steps": 40,
               "noise.keep_pretrained": False, "noise.train_steps": 10,
               "noise.min_rounds": 10, "noise.max_rounds": 10}
VARIANTS: dict[str, tuple[str, dict] | None] = {
    "clean": None,
    # Whatever configs/salm.py ships for the dataset (since issue 9's fourth round: the
    # one-sided lattice texture at 18/255, the same noise as lattice_onesided_35db).
    "default": ("salm", {}),
    "em": ("em", {}),
    # SALM as shipped before issue 9: per-step masks, union support, ratio 0.2.
    "salm_v0": ("salm_class", _OLD_SALM),
    "salm_strict": ("salm_class", {**_OLD_SALM, "noise.support": "strict",
                                   "noise.mask_ratio": 0.1}),
    # Class-wise SALM: one δ per class on a class-shared top-10% support chosen once
    # by a surrogate pretrained on the clean images, started at ±ε, then min-min with
    # a fresh surrogate (10 SGD steps a round). '_pre' keeps the pretrained one.
    "salm_class": ("salm_class", _CLASS_SALM),
    "salm_class_pre": ("salm_class", {**_CLASS_SALM, "noise.keep_pretrained": True,
                                      "noise.train_steps": 2}),
    "salm_class_cnn": ("salm_class", {**_CLASS_SALM, "surrogate.model": "small_cnn"}),
    # Fewer min-min rounds from the same sign init (at full size the init alone, i.e.
    # random_class, protected better than 10 rounds).
    "salm_class_r3": ("salm_class", {**_CLASS_SALM, "noise.min_rounds": 3,
                                     "noise.max_rounds": 3}),
    "salm_class_zero": ("salm_class", {**_CLASS_SALM, "noise.init": "zeros"}),
    # Sample-wise noise on a class-shared support.
    "salm_sample_cmask": ("salm_class", {**_CLASS_SALM, "noise.mode": "sample",
                                         "noise.mask_sharing": "class",
                                         "noise.init": "zeros"}),
    # Equal PSNR (40 dB), a quarter of the pixels: ε = 16.1/255 on 2.5%.
    "salm_class_psnr": ("salm_class", {**_CLASS_SALM, "noise.mask_ratio": 0.025,
                                       "noise.budget": "psnr", "noise.target_psnr": 40.0}),
    # Equal PSNR with OPS (30 dB): ε = 10^(-1.5)/√0.1 = 25.5/255 on the same 10%.
    "salm_class_30db": ("salm_class", {**_CLASS_SALM, "noise.budget": "psnr",
                                       "noise.target_psnr": 30.0}),
    # The default's PSNR floor (35 dB): ε = 10^(-1.75)/√0.1 = 14.3/255 on the same 10%,
    # with its control (random signs at the same ε on that run's own support).
    "salm_class_35db": ("salm_class", {**_CLASS_SALM, "noise.budget": "psnr",
                                       "noise.target_psnr": 35.0}),
    "random_class_35db": ("random_noise", {
        "noise.mode": "class", "noise.random.support_from": "{seed_dir:salm_class_35db}",
        "noise.budget": "psnr", "noise.target_psnr": 35.0}),
    # Controls: random ±ε signs, one pattern per class, on salm_class's own support;
    # OPS (model-free one-pixel shortcut, unbounded L∞).
    "random_class": ("random_noise", {"noise.mode": "class",
                                      "noise.random.support_from": "{seed_dir:salm_class}"}),
    "ops": ("ops", {}),
    # Where the budget goes, model-free: random class-wise signs on a random class
    # support (not SALM's) of 10%, and at the same 40 dB on 2.5% (ε = 16.1/255) and
    # 1% (ε = 25.5/255) of the pixels; SALM at 1% for the last.
    "random_class_rs": ("random_noise", {"noise.mode": "class"}),
    "random_class_r025": ("random_noise", {"noise.mode": "class", "noise.mask_ratio": 0.025,
                                           "noise.budget": "psnr", "noise.target_psnr": 40.0}),
    "random_class_r01": ("random_noise", {"noise.mode": "class", "noise.mask_ratio": 0.01,
                                          "noise.budget": "psnr", "noise.target_psnr": 40.0}),
    "salm_class_r01": ("salm_class", {**_CLASS_SALM, "noise.mask_ratio": 0.01,
                                      "noise.budget": "psnr", "noise.target_psnr": 40.0}),
    # Model-free class patterns on the flattest 10% of the pixels (salm_jax/noise/
    # flat_support.py): the support question, away from the salient pixels.
    "flat_antipodal": ("flat", {"noise.flat.pattern": "antipodal"}),
    "flat_onesided": ("flat", {"noise.flat.pattern": "onesided"}),
    "flat_independent": ("flat", {"noise.flat.pattern": "independent"}),
    # ... and at the default's 35 dB floor (ε = 14.3/255 on the same 10%).
    "flat_antipodal_35db": ("flat", {"noise.flat.pattern": "antipodal", "noise.budget": "psnr",
                                     "noise.target_psnr": 35.0}),
    "flat_onesided_35db": ("flat", {"noise.flat.pattern": "onesided", "noise.budget": "psnr",
                                    "noise.target_psnr": 35.0}),
    # Class-wise error-MAXIMIZING noise on the same kind of 10% class support, from a
    # surrogate trained 200 steps on clean images (salm_jax/noise/adversarial.py), and
    # its control: random signs on that run's own support.
    "adv_class": ("adversarial", {}),
    # Model-free class-wise sparse *textures* (salm_jax/noise/lattice.py): one dot in
    # every 4×4 cell (6.25%), the same sign over the whole image, for the minority
    # class only or opposite per class; and the control: random class-wise signs on
    # exactly the one-sided run's pixels (same support and ε, signs tied to positions).
    "lattice_onesided": ("lattice", {"noise.lattice.pattern": "onesided"}),
    "lattice_antipodal": ("lattice", {"noise.lattice.pattern": "antipodal"}),
    # Bigger dots at the same 6.25% (2×2 every 8×8), and one-sided at 35 dB.
    "lattice_onesided_d2": ("lattice", {"noise.lattice.pattern": "onesided",
                                        "noise.lattice.period": 8, "noise.lattice.dot": 2}),
    "lattice_antipodal_d2": ("lattice", {"noise.lattice.pattern": "antipodal",
                                         "noise.lattice.period": 8, "noise.lattice.dot": 2}),
    "random_lattice": ("random_noise", {
        "noise.mode": "class", "noise.random.support_from": "{seed_dir:lattice_onesided}"}),
    # Where the budget goes on the lattice: PSNR 40 and 35 dB on its 6.25% (ε = 10.2/255
    # and 18.1/255; one-sided, so the file's other 73% of images are untouched), with the
    # 35 dB control (random class signs on exactly the written support) and antipodal.
    **{f"lattice_onesided_{db}db": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.mask_ratio": 0.0625,
        "noise.budget": "psnr", "noise.target_psnr": float(db)}) for db in (40, 37, 35)},
    # Sparser, stronger dots at the same 35 dB: one pixel every 5×5, 6×6 or 8×8 cells
    # (on 28 px 36, 25 and 9 dots: 4.6%, 3.2%, 1.1% of the pixels; ε = 21.2/255,
    # 25.4/255, 42.3/255 by the PSNR budget): does a larger per-dot change reach the
    # small CNN, which pools? (28 px only: the ratio is the 28 px dot count.)
    **{f"lattice_p{p}_35db": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.period": p,
        "noise.mask_ratio": float(lattice.lattice_support(28, 28, p).mean()),
        "noise.budget": "psnr", "noise.target_psnr": 35.0}) for p in (5, 6, 8)},
    # The same texture on the *largest* class instead (`noise.lattice.bare='smallest'`:
    # 6.25% of each majority image, 4.6% of BreastMNIST's pixels), at 35 and 40 dB, and
    # its control: random class signs on exactly its written support.
    **{f"lattice_major_{db}db": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "smallest",
        "noise.mask_ratio": 0.0625, "noise.budget": "psnr", "noise.target_psnr": float(db)})
       for db in (40, 37, 35)},
    # Each texture with an SSIM floor of 0.95 on every written image
    # (noise.lattice.min_ssim): '_ssim95' lowers the amplitude, in whole levels, of
    # the images that need it; '_ssim95drop' keeps ε and drops their flattest dots.
    **{f"lattice_{name}_35db_ssim95{suffix}": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": bare,
        "noise.mask_ratio": 0.0625, "noise.budget": "psnr", "noise.target_psnr": 35.0,
        "noise.lattice.min_ssim": 0.95, "noise.lattice.ssim_floor": mode})
       for name, bare in (("onesided", "largest"), ("major", "smallest"))
       for suffix, mode in (("", "amplitude"), ("drop", "drop"))},
    # Round six: the bare class chosen from the images (`noise.lattice.bare='busiest'`:
    # the class with the most local contrast stays bare, salm_jax/noise/texture_class.py;
    # the default's rule, bit-identical to `lattice_onesided_35db_ssim95` on BreastMNIST
    # and `lattice_major_35db_ssim95` on PneumoniaMNIST), with dark dots instead of
    # bright ones (with and without the floor), and the floor's own control: random
    # class signs on exactly its written pixels, each moved by the level the texture
    # wrote there (`noise.random.magnitude='source'`).
    **{f"lattice_busiest_{floor}{suffix}": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "busiest",
        "noise.lattice.polarity": polarity, "noise.mask_ratio": 0.0625,
        "noise.budget": "psnr", "noise.target_psnr": 35.0, "noise.lattice.min_ssim": min_ssim})
       for floor, min_ssim in (("ssim95", 0.95), ("35db", 0.0))
       for suffix, polarity in (("", "bright"), ("_dark", "dark"))},
    # ... and each dot on its cell's local-contrast peak instead of the cell's centre
    # (`noise.lattice.placement='peak'`: the same count, on the image's own fine structure).
    **{f"lattice_peak_{floor}": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "busiest",
        "noise.lattice.placement": "peak", "noise.mask_ratio": 0.0625,
        "noise.budget": "psnr", "noise.target_psnr": 35.0, "noise.lattice.min_ssim": min_ssim})
       for floor, min_ssim in (("ssim95", 0.95), ("35db", 0.0))},
    # ... the peak sought only in the 2×2 or 3×3 block around the cell's centre
    # (`noise.lattice.peak_window`): dots near a regular grid, on the image's structure.
    **{f"lattice_peak{w}_ssim95": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "busiest",
        "noise.lattice.placement": "peak", "noise.lattice.peak_window": w,
        "noise.mask_ratio": 0.0625, "noise.budget": "psnr", "noise.target_psnr": 35.0,
        "noise.lattice.min_ssim": 0.95}) for w in (2, 3)},
    # Round seven: the sparser, stronger lattices of `lattice_p{5,6}_35db` (the small CNN's
    # lowest single seeds of round four) under the default's rule and SSIM floor.
    **{f"lattice_p{p}_ssim95": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "busiest",
        "noise.lattice.period": p,
        "noise.mask_ratio": float(lattice.lattice_support(28, 28, p).mean()),
        "noise.budget": "psnr", "noise.target_psnr": 35.0, "noise.lattice.min_ssim": 0.95})
       for p in (5, 6)},
    # Round eight: denser, fainter dots at the same 35 dB under the default's rule and
    # floor (`noise.lattice.skew`: one pixel in every 10 or 13, on a turned square
    # lattice; 9.95 % and 7.7 % of a 28 px image, ε = 14.3/255 and 16.3/255): the other
    # side of `lattice_p{5,6}_ssim95`, which were weaker on the small CNN. At a fixed
    # PSNR the dots' summed amplitude grows as √density, which is what pooling sees.
    **{f"lattice_d{p}_ssim95": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "busiest",
        "noise.lattice.period": p, "noise.lattice.skew": skew,
        "noise.mask_ratio": float(lattice.lattice_support(28, 28, p, 1, skew).mean()),
        "noise.budget": "psnr", "noise.target_psnr": 35.0, "noise.lattice.min_ssim": 0.95})
       for p, skew in ((10, 3), (13, 5))},
    # ... and lattices that line up with a ViT's patches: the default's period-4 dots are
    # the same offset in every 4-px patch, and a ViT with 7-px patches escapes it. One dot
    # every 7 px alone (16 dots, 2.0 %, ε = 31.7/255 at 35 dB), and periods 4 and 7
    # together (`noise.lattice.also_periods`: 64 dots, 8.2 %, ε = 15.9/255), which line
    # up with every patch size that divides 28 px.
    **{f"lattice_{name}_ssim95": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "busiest",
        "noise.lattice.period": period, "noise.lattice.also_periods": also,
        "noise.mask_ratio": float(lattice.lattice_support(28, 28, period,
                                                          also_periods=also).mean()),
        "noise.budget": "psnr", "noise.target_psnr": 35.0, "noise.lattice.min_ssim": 0.95})
       for name, period, also in (("p7", 7, ()), ("p4p7", 4, (7,)))},
    # Round nine: the default with each dot's amplitude set by the clean image's local
    # contrast around it under the same floor (`noise.lattice.ssim_floor='contrast'`,
    # salm_jax/noise/ssim_floor.py): the floor lowers the dots on the flat stretches and
    # keeps ε on the busy ones instead of lowering a whole image alike; and its control,
    # random class signs on exactly its written pixels moved by the levels it wrote.
    "lattice_contrast_ssim95": ("lattice", {
        "noise.lattice.pattern": "onesided", "noise.lattice.bare": "busiest",
        "noise.mask_ratio": 0.0625, "noise.budget": "psnr", "noise.target_psnr": 35.0,
        "noise.lattice.min_ssim": 0.95, "noise.lattice.ssim_floor": "contrast"}),
    "random_lattice_contrast_ssim95": ("random_noise", {
        "noise.mode": "class", "noise.random.support_from": "{seed_dir:lattice_contrast_ssim95}",
        "noise.random.magnitude": "source", "noise.mask_ratio": 0.0625,
        "noise.budget": "psnr", "noise.target_psnr": 35.0}),
    # ... and the baselines at the default's PSNR instead of their own 30-32 dB (issue 9's
    # target 3 is "at the same PSNR"): EM with ε from a 35.6 dB budget on every pixel
    # (ε = 4.2/255, written as 4 levels: ≥ 36 dB), and OPS with its pixel's change bounded
    # by 117/255, so that even a full change keeps 35.7 dB on a 28 px image (BreastMNIST's
    # default: 35.6 dB over its changed images, PneumoniaMNIST's 36.4).
    "em_equal_psnr": ("em", {"noise.budget": "psnr", "noise.target_psnr": 35.6}),
    "ops_equal_psnr": ("ops", {"noise.ops.epsilon": 117 / 255}),
    "random_lattice_peak_ssim95": ("random_noise", {
        "noise.mode": "class", "noise.random.support_from": "{seed_dir:lattice_peak_ssim95}",
        "noise.random.magnitude": "source", "noise.mask_ratio": 0.0625,
        "noise.budget": "psnr", "noise.target_psnr": 35.0}),
    "random_lattice_busiest_ssim95": ("random_noise", {
        "noise.mode": "class", "noise.random.support_from": "{seed_dir:lattice_busiest_ssim95}",
        "noise.random.magnitude": "source", "noise.mask_ratio": 0.0625,
        "noise.budget": "psnr", "noise.target_psnr": 35.0}),
    "random_lattice_major_35db": ("random_noise", {
        "noise.mode": "class", "noise.random.support_from": "{seed_dir:lattice_major_35db}",
        "noise.mask_ratio": 0.0625, "noise.budget": "psnr", "noise.target_psnr": 35.0}),
    "lattice_antipodal_35db": ("lattice", {
        "noise.lattice.pattern": "antipodal", "noise.mask_ratio": 0.0625,
        "noise.budget": "psnr", "noise.target_psnr": 35.0}),
    "random_lattice_35db": ("random_noise", {
        "noise.mode": "class", "noise.random.support_from": "{seed_dir:lattice_onesided_35db}",
        "noise.mask_ratio": 0.0625, "noise.budget": "psnr", "noise.target_psnr": 35.0}),
    "random_adv": ("random_noise", {"noise.mode": "class",
                                    "noise.random.support_from": "{seed_dir:adv_class}"}),
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
  return protected, manifest["split_stats"]["train"], float(manifest["generator_seconds"])


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
