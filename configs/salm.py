"""SALM, the tool's default: `--config=configs/salm.py:<arg>`, any field as `--config.a.b=v`.

Error-minimizing noise (Huang et al., 2021) whose every PGD step touches only
the most salient pixels (Sun et al., 2024): at most 10 % of each image's
pixels change, by at most 8/255. One pattern per class where each image has
one class; one per image for multi-label data. Why these settings:
docs/method.md; what they protect: docs/RESULTS.md.

arg = '<data>[,full|,tiny][,size=<px>]'
  data  'synthetic' (the built-in phantom, no download) or a MedMNIST flag
        ('breastmnist', 'chestmnist', ...); `--config.dataset.name` also takes
        an npz path or an image folder.
  full  paper size, for one GPU or a TPU v4-8: a width-64 ResNet-18 surrogate,
        MedMNIST's 100-epoch victims over the zoo, the defenses.
  tiny  seconds per stage, for tests and smoke runs; its numbers mean nothing.
  size  MedMNIST image size: 28 (default), 64, 128 or 224.

Without ',full', sized for 2 CPU cores: ':synthetic' protects and evaluates
in about a minute; ':breastmnist' makes its noise in 3 to 5 minutes and
trains the six-architecture zoo in about 22 (pass --config.evaluation.archs
for fewer victims).
"""
import ml_collections

from salm_jax import data, evaluation, sweep
from salm_jax.noise.salm import generator, surrogate

# The victims, each at a width that trains 20 BreastMNIST epochs on 2 cores in
# seconds (small CNN) to minutes (DenseNet-121). None of them is the surrogate.
CPU_ZOO = ("small_cnn", "resnet18", "vgg16", "vit_small", "resnet50", "densenet121")
CPU_ZOO_KWARGS = {"small_cnn": {"width": 16}, "resnet18": {"width": 16}, "vgg16": {"width": 16},
                  "vit_small": {"dim": 64, "depth": 4, "heads": 2},
                  "resnet50": {"width": 8}, "densenet121": {"width": 8, "growth_rate": 4}}
FULL_DEFENSES = ("none", "crop_pad+hflip", "rotate", "cutout", "mixup", "cutmix",
                 "jpeg:quality=10", "jpeg:quality=50", "gaussian_blur", "median_filter",
                 "bit_depth:bits=4", "center_crop_resize", "random_crop_resize", "pgd_at")


def parse_arg(arg: str) -> tuple[str, str, int]:
  """'<data>[,full|,tiny][,size=N]' -> (data, variant 'cpu'|'full'|'tiny', size)."""
  parts = [p.strip() for p in (arg or "synthetic").split(",") if p.strip()]
  name, variant, size = parts[0], "cpu", 28
  for p in parts[1:]:
    if p in ("full", "tiny"):
      variant = p
    elif p.startswith("size=") and p[len("size="):].isdigit():
      size = int(p[len("size="):])
    else:
      raise ValueError(f"Unknown config option {p!r} in {arg!r}; expected 'full', 'tiny' "
                       "or 'size=N'.")
  return name, variant, size


def get_config(arg: str = "synthetic") -> ml_collections.ConfigDict:
  name, variant, size = parse_arg(arg)
  phantom = name == "synthetic"
  config = ml_collections.ConfigDict()
  config.seed = 0                          # noise: surrogate init, batches, signs
  config.hardware = "2 CPU cores"          # what the variant is sized for (informational)
  config.tensorboard = True                # TensorBoard events when a writer is installed

  config.dataset = data.default_config()
  config.dataset.name = "phantom" if phantom else name
  config.dataset.size = size
  config.dataset.phantom.lesion_contrast = 60.0  # faint lesions: not learned in a few steps

  config.noise = generator.default_config()
  config.noise.method = "salm"             # see salm_jax/noise/methods.py for the others
  config.noise.mode = "auto"               # one δ per class; per image on multi-label data
  config.noise.mask_ratio = 0.1            # at most 10 % of each image's pixels
  config.noise.epsilon = 8 / 255           # L∞ budget of every pixel
  config.noise.mask_schedule = "step"      # the top-k pixels re-chosen at every PGD step
  config.noise.support_ties = "saliency"   # a round keeps the k largest |δ|, ties by saliency
  config.noise.init = "zeros"
  config.noise.pgd_steps = 10              # PGD steps per round, each of step_size
  config.noise.step_size = 1.6 / 255
  config.noise.train_steps = 10            # surrogate SGD steps per round, as EM's code
  config.noise.min_rounds = 10             # rounds before the stop test may end the run
  config.noise.max_rounds = 40
  config.noise.stop_accuracy = 0.99        # EM's stop: the surrogate fits x + δ

  config.surrogate = surrogate.default_config()
  config.surrogate.model = "small_cnn" if phantom else "resnet18"
  config.surrogate.width = 16
  config.surrogate.batch_size = 64

  config.evaluation = evaluation.default_config()  # MedMNIST's victim recipe, shortened:
  config.evaluation.archs = ("small_cnn",) if phantom else CPU_ZOO
  config.evaluation.model_kwargs = CPU_ZOO_KWARGS
  config.evaluation.epochs = 15 if phantom else 20
  config.evaluation.batch_size = 32        # 546 BreastMNIST images give 18 steps an epoch

  config.sweep = sweep.default_config()    # launch.sweep: the mask-ratio ablation

  if variant == "full":
    config.hardware = "1 A100/H100-class GPU or TPU v4-8"
    config.surrogate.width = 64            # the full ResNet-18
    config.noise.pgd_steps, config.noise.step_size = 20, 0.8 / 255  # EM's published round
    config.noise.pgd_batch_size = 512
    config.evaluation.archs = CPU_ZOO
    config.evaluation.model_kwargs = {}    # every victim at its published width
    config.evaluation.epochs = 100
    config.evaluation.batch_size = 128
    config.evaluation.defenses = FULL_DEFENSES
    config.evaluation.poison_fractions = (1.0, 0.8, 0.5, 0.2)
  if variant == "tiny":
    config.dataset.phantom.update(n_train=64, n_val=32, n_test=32)
    config.surrogate.model, config.surrogate.width, config.surrogate.batch_size = (
        "small_cnn", 4, 32)
    config.noise.update(pgd_steps=2, train_steps=2, min_rounds=1, max_rounds=2,
                        pgd_batch_size=64)
    config.evaluation.archs = ("small_cnn",)
    config.evaluation.model_kwargs = {"small_cnn": {"width": 4}}
    config.evaluation.epochs = 2
    config.sweep.grid = (0.1, 1.0)
  return config
