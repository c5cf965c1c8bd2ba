"""Victim training: MedMNIST's schedule, the loss, learning, every model and defense."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salm_jax import tasks
from salm_jax.data.dataset import Split
from salm_jax.evaluation import defenses, victim
from salm_jax.models import model_names, model_options

TINY = {"width": 4, "growth_rate": 4, "dim": 16, "depth": 1, "heads": 2, "patch_size": 4}


def _tiny_cfg(arch="small_cnn", epochs=3, batch_size=16):
  cfg = victim.victim_config()
  cfg.epochs, cfg.batch_size, cfg.eval_batch_size = epochs, batch_size, 64
  cfg.fast_compile = True  # tests check behaviour, not speed: compile 5x faster
  cfg.model_kwargs = {arch: {k: v for k, v in TINY.items() if k in model_options(arch)}}
  return cfg


def test_lr_schedule_is_torch_multisteplr():
  sched = victim.lr_schedule(1e-3, epochs=100, steps_per_epoch=3, milestones=(0.5, 0.75),
                             gamma=0.1)
  # Epochs 0-49 at 1e-3, 50-74 at 1e-4, 75-99 at 1e-5 (MultiStepLR stepped per epoch).
  for step, lr in ((0, 1e-3), (149, 1e-3), (150, 1e-4), (224, 1e-4), (225, 1e-5), (299, 1e-5)):
    assert float(sched(step)) == pytest.approx(lr), step
  # Two epochs: both milestones land on epoch 1 and compound; one epoch: none fires.
  assert float(victim.lr_schedule(1.0, 2, 5, (0.5, 0.75), 0.1)(5)) == pytest.approx(0.01)
  assert float(victim.lr_schedule(1.0, 1, 5, (0.5, 0.75), 0.1)(4)) == pytest.approx(1.0)


@pytest.mark.parametrize("task, labels", [
    (tasks.BINARY, np.array([[0], [1], [1]])),
    (tasks.MULTI_CLASS, np.array([[2], [0], [1]])),
    (tasks.MULTI_LABEL, np.array([[0, 1, 1], [1, 0, 0], [1, 1, 1]])),
])
def test_soft_loss_with_hard_targets_is_the_task_loss(task, labels):
  k = 2 if task == tasks.BINARY else 3
  logits = jax.random.normal(jax.random.key(0), (3, k))
  t = victim.targets_of(jnp.asarray(labels), task, k)
  np.testing.assert_allclose(victim.soft_loss(logits, t, task),
                             tasks.loss(logits, jnp.asarray(labels), task), rtol=1e-6)


def _separable_split(n, key, size=12, channels=1):
  """Class 1 has a bright square in the middle: easy to learn from 64 images."""
  rng = np.random.default_rng(key)
  y = rng.integers(0, 2, (n, 1))
  x = rng.integers(0, 100, (n, size, size, channels)).astype(np.uint8)
  x[y[:, 0] == 1, 3:9, 3:9] += 120
  return Split(x if channels > 1 else x[..., 0], y)


def test_victim_learns_and_reports_last_and_best_val():
  train, val, test = (_separable_split(n, s) for n, s in ((64, 0), (32, 1), (32, 2)))
  out = victim.train_victim(train, val, test, task=tasks.BINARY, num_classes=2,
                            arch="small_cnn", cfg=_tiny_cfg(epochs=4), defense="none",
                            key=jax.random.key(0))
  hist = out["history"]
  assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
  assert hist[-1]["train_loss"] < hist[0]["train_loss"]
  assert out["last"] == {"epoch": 4, "auc": hist[-1]["test_auc"], "acc": hist[-1]["test_acc"],
                         "val_auc": hist[-1]["val_auc"]}
  best = max(hist, key=lambda h: h["val_auc"])
  assert out["best_val"]["val_auc"] == best["val_auc"]
  assert out["best_val"]["epoch"] == min(h["epoch"] for h in hist if h["val_auc"] == best["val_auc"])
  assert out["last"]["auc"] > 0.95  # (ACC lags: BatchNorm's running stats after 16 steps)
  # The returned model is the last-epoch model, in eval mode.
  scores = victim.make_predict_fn(out["model"], tasks.BINARY)(
      test.images[..., None].astype(np.float32) / 255)
  from salm_jax.evaluation import metrics
  assert metrics.acc(test.labels, scores, tasks.BINARY) == pytest.approx(out["last"]["acc"])


def _one_step(arch, task, num_classes, spec, x, labels):
  cfg = _tiny_cfg(arch)
  g, ge, params, rest = victim.init_model(arch, cfg, num_classes=num_classes,
                                          in_channels=x.shape[-1], image_size=x.shape[1],
                                          key=jax.random.key(0))
  opt_init, step, _ = victim.compiled_functions(g, ge, task, num_classes, defenses.get(spec),
                                                (1e-3, 1, 1, (0.5, 0.75), 0.1), True)
  before = jax.tree.map(jnp.copy, params)
  state = victim.VictimState(params, rest, opt_init(params), jnp.zeros((), jnp.int32))
  state, m = step(state, (x, labels), jax.random.key(1))
  assert np.isfinite(float(m["loss"]))
  assert int(state.step) == 1
  # Every parameter leaf of the model moved (Adam's first step is ±lr on each entry).
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before, state.params)
  assert all(jax.tree.leaves(changed)), arch


def _shallow_densenet(*, num_classes, in_channels, image_size, rngs, growth_rate=32, width=64):
  """densenet121's own class and layers, one layer per dense block."""
  from salm_jax.models import densenet
  return densenet.DenseNet(block_sizes=(1, 1, 1, 1), num_classes=num_classes,
                           in_channels=in_channels, image_size=image_size,
                           growth_rate=growth_rate, width=width, rngs=rngs)


def _shallow_resnet50(*, num_classes, in_channels, image_size, rngs, width=64):
  """resnet50's own class and Bottleneck blocks, one block per stage."""
  from salm_jax.models import resnet
  return resnet.ResNet(block=resnet.Bottleneck, stage_sizes=(1, 1, 1, 1),
                       num_classes=num_classes, in_channels=in_channels,
                       image_size=image_size, width=width, rngs=rngs)


# The deep graphs take long to compile on a 2-core CPU (ResNet-50 ~30 s here);
# the victim code path is the same with one block per stage. tests/test_models.py
# trains full-depth ResNet-50 for a step and checks DenseNet-121's full shapes.
_SHALLOW = {"densenet121": _shallow_densenet, "resnet50": _shallow_resnet50}


@pytest.mark.parametrize("arch", model_names())
def test_every_model_trains_one_step(arch, monkeypatch):
  if arch in _SHALLOW:
    from salm_jax import models
    monkeypatch.setitem(models._REGISTRY, arch, _SHALLOW[arch])
  x = jax.random.uniform(jax.random.key(2), (2, 16, 16, 1))
  try:
    _one_step(arch, tasks.BINARY, 2, "none", x, jnp.array([[0], [1]]))
  finally:
    victim._model_initializer.cache_clear()  # forget the patched builder


# Three specs that together hold every registered defense, on RGB images so that
# grayscale applies; per-batch transforms with multi-label (BCE) soft targets.
_COMBINED = {
    "jpeg:quality=30+gaussian_blur+median_filter+bit_depth:bits=3+grayscale"
    "+center_crop_resize": (tasks.MULTI_CLASS, 3),
    "random_crop_resize+crop_pad:padding=2+hflip+rotate+cutout+mixup+cutmix":
        (tasks.MULTI_LABEL, 3),
    "pgd_at:steps=2": (tasks.BINARY, 2),
}


def test_the_step_specs_cover_every_defense():
  used = {name for s in _COMBINED for name, _ in defenses.get(s).parts}
  assert used == set(defenses.names())


@pytest.mark.parametrize("spec", list(_COMBINED))
def test_every_defense_trains_one_step(spec):
  task, k = _COMBINED[spec]
  x = jax.jit(defenses.get(spec).preprocess_train,
              compiler_options=victim.FAST_COMPILE_OPTIONS)(
      jax.random.uniform(jax.random.key(3), (4, 12, 12, 3)))
  labels = (jnp.array([[0, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 1]]) if task == tasks.MULTI_LABEL
            else jnp.arange(4)[:, None] % k)
  _one_step("small_cnn", task, k, spec, x, labels)


def test_defended_victim_runs_end_to_end_with_a_partial_last_batch():
  train, val, test = (_separable_split(n, s, channels=3) for n, s in ((40, 0), (8, 1), (8, 2)))
  out = victim.train_victim(train, val, test, task=tasks.BINARY, num_classes=2,
                            arch="small_cnn", cfg=_tiny_cfg(epochs=1), defense="jpeg:quality=50+hflip",
                            key=jax.random.key(0))
  chex.assert_scalar_in(out["last"]["acc"], 0.0, 1.0)
  assert len(out["history"]) == 1
  with pytest.raises(ValueError, match="Unknown defense"):
    victim.train_victim(train, val, test, task=tasks.BINARY, num_classes=2, arch="small_cnn",
                        cfg=_tiny_cfg(), defense="jpg", key=jax.random.key(0))
