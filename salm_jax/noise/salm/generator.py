"""The bi-level min-min generator: alternate surrogate training and masked PGD.

Each round (EM's loop, Huang et al. 2021, with SALM's masked steps):
  1. train the surrogate `train_steps` minibatches on clip(x + δ, 0, 1);
  2. run one `masked_pgd` round (`pgd_steps` steps) over the whole perturbed
     set, batch by batch, the surrogate in inference mode;
  3. measure the surrogate's accuracy on x + δ; stop once it reaches
     `stop_accuracy`, or after `max_rounds`.
Round r draws its randomness from fold_in(key, r), and a checkpoint holds
everything else, so a run resumed from a checkpoint ends exactly where an
uninterrupted run ends. δ and its masks stay on the devices from the first
round to the last (resident.py); the host holds the images as given (uint8
is kept as uint8) and sees δ at checkpoints and at the end.

The pieces of a run (`compiled_steps`, `start_or_resume`, `prepare`,
`to_devices`, `pgd_pass`, `surrogate_accuracy`, `to_host`, `per_sample`) are
public so that a method built from them (`adversarial.py`) needs no branch
in this loop.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import PartitionSpec as P
from tqdm import auto as tqdm

from salm_jax import checkpointing
from salm_jax import run_log
from salm_jax import sharding
from salm_jax import tasks
from salm_jax import terminal
from salm_jax import xla_cpu
from salm_jax.data import dataset
from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise.salm import pgd
from salm_jax.noise.salm import resident
from salm_jax.noise.salm import saliency as saliency_lib
from salm_jax.noise.salm import starts
from salm_jax.noise.salm import surrogate as surrogate_lib

INITS = ("auto", "zeros", "uniform", "sign", "ar", "lsp")


def default_config() -> ml_collections.ConfigDict:
  """The `config.noise` block: SALM within the budget, EM's loop (configs/salm.py explains)."""
  return ml_collections.ConfigDict(dict(
      mask_ratio=0.1,           # the most of each image a step may touch and δ may hold; 1 = EM
      epsilon=8 / 255, step_size=1.6 / 255,
      pgd_steps=10, train_steps=10,
      mask_schedule="step",     # step (re-chosen each step) or fixed (chosen once, clean)
      init="auto",              # auto (zeros if ratio < 1 else uniform), zeros, uniform,
                                # sign (±ε on the fixed mask; mask_schedule='fixed' only),
                                # ar, lsp (a transferable pattern on the top-k: starts.py)
      mode="auto",              # class, sample, or auto (class unless multi-label)
      # At a round's end δ keeps its k largest-|δ| pixels; most sit at ±ε, and
      # 'saliency' ranks those by the last step's saliency, 'index' by raster order.
      support_ties="saliency",
      # > 0: each PGD step averages its gradient over this many random crops and flips
      # of x + δ (augment.py, REM's expectation over the victim's augmentations).
      eot_samples=0,
      # Surrogate SGD steps on the clean images before round 0, so that a 'fixed'
      # mask comes from a model that has learned the task (rounded up to a
      # multiple of train_steps; 0: EM's untrained start).
      pretrain_steps=0,
      # After choosing the fixed mask, continue min-min from the pretrained surrogate
      # (True) or from the fresh one (False, EM's start: a surrogate that learns the
      # noisy data from scratch, as a victim would, and so rewards shortcut noise).
      keep_pretrained=True,
      # 'linf': epsilon is the L∞ bound (default). 'psnr': epsilon is derived from
      # target_psnr and mask_ratio (salm_jax/noise/budget.py), at equal PSNR.
      budget="linf", target_psnr=40.0,
      stop_accuracy=0.99,       # EM's stop: the surrogate fits x + δ ...
      min_rounds=10,            # ... once this many rounds are done
      max_rounds=40,
      pgd_batch_size=256,
      checkpoint_every=1,       # rounds between checkpoints (0: never)
      splits=("train",),        # splits that are protected
  ))


@dataclasses.dataclass
class GeneratorResult:
  """Per-sample noise (x + δ in [0, 1]), the union of masks used, and the run's history."""
  delta: np.ndarray            # (N, H, W, C) float32
  masks: np.ndarray            # (N, H, W) bool
  history: list[dict]
  rounds: int
  stopped_early: bool
  surrogate: surrogate_lib.Surrogate
  surrogate_state: Any


def check_settings(noise: ml_collections.ConfigDict, task: str | None = None) -> None:
  """The config-only checks (`task=None`: those that need no dataset), cheap and early."""
  masks_lib.check_ratio(noise.mask_ratio)
  pgd.check_budget(noise.epsilon, noise.step_size, noise.pgd_steps)
  pgd.check_schedule(noise.mask_schedule, check_mask=False)  # 'fixed' masks are made here
  pgd.check_eot(noise.get("eot_samples", 0))
  pgd.check_ties(noise.get("support_ties", "saliency"))
  if noise.init not in INITS:
    raise ValueError(f"noise.init must be one of {INITS}, got {noise.init!r}.")
  _validate_masking(noise, task)
  if not 0.0 < noise.stop_accuracy <= 1.01 or noise.max_rounds < 1 or not (
      0 <= noise.min_rounds <= noise.max_rounds):
    raise ValueError(f"Need 0 < stop_accuracy <= 1.01 and 0 <= min_rounds <= max_rounds >= 1; "
                     f"got {noise.stop_accuracy}, {noise.min_rounds} and {noise.max_rounds}.")


def validate(noise: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray,
             task: str, num_classes: int) -> None:
  """Raises a clear error for bad inputs or settings, before anything is compiled."""
  tasks.check_task(task)
  check_settings(noise, task)
  check_data(images, labels, task, num_classes)


def check_data(images: np.ndarray, labels: np.ndarray, task: str, num_classes: int) -> None:
  """The checks on images and labels that every noise method needs."""
  if (not isinstance(images, np.ndarray) or images.ndim != 4
      or images.dtype not in (np.float32, np.uint8)):
    raise ValueError(f"images must be (N, H, W, C), float32 in [0, 1] or uint8; got "
                     f"{getattr(images, 'dtype', type(images))} {np.shape(images)}.")
  if images.dtype == np.float32 and (
      not np.isfinite(images).all() or images.min() < 0 or images.max() > 1):
    raise ValueError("images must be finite and in [0, 1] (NaN/inf or out-of-range pixels).")
  if labels.ndim != 2 or len(labels) != len(images):
    raise ValueError(f"labels must be (N, L) with N = {len(images)}; got {labels.shape}.")
  if not tasks.is_multilabel(task) and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}); got [{labels.min()}, "
                     f"{labels.max()}].")


def _validate_masking(noise: ml_collections.ConfigDict, task: str | None) -> None:
  """Mode and init must fit together and fit the task."""
  tasks.noise_mode(noise.mode, task or tasks.BINARY)  # a known mode that fits the task
  if noise.init == "sign" and noise.mask_schedule != "fixed":
    raise ValueError("noise.init='sign' puts ±ε on the fixed mask: it needs "
                     f"noise.mask_schedule='fixed', got {noise.mask_schedule!r}.")
  pretrain = noise.get("pretrain_steps", 0)
  if isinstance(pretrain, bool) or not isinstance(pretrain, int) or pretrain < 0:
    raise ValueError(f"noise.pretrain_steps must be a non-negative integer, got {pretrain!r}.")


_PGD_FIELDS = ("mask_ratio", "epsilon", "step_size", "pgd_steps", "mask_schedule", "eot_samples",
               "support_ties")


def compiled_steps(sur: surrogate_lib.Surrogate, noise: ml_collections.ConfigDict) -> "_Steps":
  defaults = default_config()
  return _cached_steps(sur, tuple((f, noise.get(f, defaults[f])) for f in _PGD_FIELDS))


@functools.lru_cache(maxsize=8)
def _cached_steps(sur, pgd_items: tuple) -> "_Steps":
  return _Steps(sur, dict(pgd_items))


class _Steps:
  """The compiled units of a run: surrogate training, a PGD round, accuracy.

  Built once per (surrogate, PGD settings) and cached, so repeated runs with
  the same shapes (sweeps over other fields, tests) do not compile again.
  """

  def __init__(self, sur: surrogate_lib.Surrogate, noise: dict):
    task = sur.task
    epsilon, step_size = float(noise["epsilon"]), float(noise["step_size"])
    static = dict(ratio=masks_lib.check_ratio(noise["mask_ratio"]), steps=int(noise["pgd_steps"]),
                  task=task, schedule=noise["mask_schedule"], return_mask=True,
                  unroll=pgd.default_unroll(), eot_samples=int(noise["eot_samples"]),
                  ties=noise["support_ties"])

    def pgd_round(state, images, labels, delta, fixed_mask, groups, key):
      return pgd.masked_round(sur.logits_fn(state), images, labels, delta, epsilon, step_size,
                              fixed_mask, groups, key=key, **static)

    def train(state, images, labels, source, index):
      return surrogate_lib.train_steps(sur, state, images, labels, source[index])

    def recalibrate(state, images, source, index):
      inputs = jnp.clip(images + source[index], 0.0, 1.0)
      return surrogate_lib.recalibrate_batch_norm(sur, state, inputs)

    def correct(state, images, labels, source, index, b, real, *, chunk, ndev):
      """How many real rows of a batch the surrogate gets right on x + δ."""
      delta = source[index] if index is not None else resident.take(source, b, chunk, ndev)
      logits = sur.logits_fn(state)(jnp.clip(images + delta, 0.0, 1.0))
      return jnp.where(real, tasks.per_example_correct(logits, labels, task), 0).sum()

    def clean_saliency(state, images, labels):
      return saliency_lib.saliency_map(sur.logits_fn(state), images, labels, task=task)

    # Every program here is convolutions: compiled with the library's XLA:CPU options.
    self.train = xla_cpu.jit(train)
    self.recalibrate = xla_cpu.jit(recalibrate)
    self.pgd_round = xla_cpu.jit(pgd_round)
    self.pgd_rows = xla_cpu.jit(functools.partial(_pgd_rows, sur, epsilon, step_size, static),
                                donate_argnums=(3, 4), static_argnames=("mesh",))
    self.correct = xla_cpu.jit(correct, static_argnames=("chunk", "ndev"))
    self.clean_saliency = xla_cpu.jit(clean_saliency)
    self.union = jax.jit(jnp.logical_or)


def _pgd_rows(sur, epsilon, step_size, static, state, images, labels, delta, union, fixed, b,
              key, *, mesh):
  """Per-image round on batch b of the row-sharded δ and masks (resident.py), updated in
  place: each device works on its own rows, with no collective and no transfer."""
  def local(state, images, labels, delta, union, fixed, b, key):
    chunk = images.shape[0]
    take = lambda a: jax.lax.dynamic_slice_in_dim(a, b * chunk, chunk)
    put = lambda a, v: jax.lax.dynamic_update_slice_in_dim(a, v.astype(a.dtype), b * chunk, 0)
    if key is not None:  # each device draws its own images' crops
      key = jax.random.fold_in(key, jax.lax.axis_index(sharding.DATA_AXIS))
    new, mask = pgd.masked_round(sur.logits_fn(state), images, labels, take(delta), epsilon,
                                 step_size, None if fixed is None else take(fixed), None,
                                 key=key, **static)
    return put(delta, new), put(union, take(union) | mask)
  rows, shared = P(sharding.DATA_AXIS), P()
  return jax.shard_map(local, mesh=mesh, out_specs=(rows, rows), check_vma=False, in_specs=(
      shared, rows, rows, rows, rows, rows, shared, shared))(
          state, images, labels, delta, union, fixed, b, key)


@dataclasses.dataclass
class Run:
  """The state of one generator run (everything a checkpoint holds).

  δ and its masks are host arrays before the rounds and in checkpoints, and
  device arrays during the rounds (`to_devices`, `to_host`; resident.py).
  """
  state: Any
  delta: Any                 # (N | G, H, W, C) float32
  union: Any                 # (N | G, H, W) bool
  fixed_mask: Any            # (N | G, H, W) bool, used by mask_schedule='fixed'
  history: list[dict]
  next_round: int


def generate(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
             task: str, num_classes: int, checkpoint_dir: str | None = None,
             metrics_path: str | None = None, progress: bool = True, mesh=None,
             on_round: Callable[[dict], None] | None = None) -> GeneratorResult:
  """Generates SALM (or EM, with mask_ratio=1) noise for `images`.

  Args:
    config: experiment config with `noise` (see `default_config`), `surrogate`
      (see `surrogate.default_config`) and `seed`.
    images: (N, H, W, C), float32 in [0, 1] or uint8 (kept as uint8 on the host, each
      batch converted on its way to the devices); labels: (N, L) MedMNIST labels.
    task, num_classes: the MedMNIST task type and its number of classes/labels.
    checkpoint_dir: where to save and resume from (None: no checkpoints).
    metrics_path: a JSON-lines file rewritten with the history every round.
    progress: show a progress bar per round.
    mesh: a 1-D 'data' mesh; default: all devices.
    on_round: called with each round's metrics (e.g. a TensorBoard writer).
  """
  noise = config.noise
  labels = tasks.label_matrix(np.asarray(labels), task)
  validate(noise, images, labels, task, num_classes)
  mesh = mesh if mesh is not None else sharding.data_mesh()
  sur, state = surrogate_lib.create(config.surrogate, task=task, num_classes=num_classes,
                                    in_channels=images.shape[-1], image_size=images.shape[1],
                                    seed=config.seed)
  steps = compiled_steps(sur, noise)
  key = jax.random.PRNGKey(config.seed)
  class_wise = tasks.noise_mode(noise.mode, task) == "class"
  groups = labels[:, 0].astype(np.int32) if class_wise else None
  run = start_or_resume(noise, images, state, key, groups, num_classes, checkpoint_dir)
  run.state = sharding.replicate(mesh, run.state)
  if run.next_round == 0:
    if noise.init in starts.PATTERNS:
      run.delta = starts.transfer_start(config, as_float(images), labels, task=task,
                                        num_classes=num_classes, groups=groups)
    run = prepare(steps, noise, config.surrogate, mesh, run, images, labels, groups, key)
  layout = layout_of(noise, mesh, len(images), groups is not None)
  count = len(run.delta)
  run = to_devices(mesh, run, layout if groups is None else None)
  stopped = bool(run.history) and _should_stop(noise, run.history)
  host = None  # the host copy of the current δ, once gathered
  for r in range(run.next_round, noise.max_rounds):
    if stopped:
      break
    host = None
    run = _one_round(steps, noise, config.surrogate, mesh, layout, run, images, labels, groups,
                     jax.random.fold_in(key, r), r, progress)
    _report(noise, run.history, metrics_path, on_round)
    stopped = _should_stop(noise, run.history)
    if checkpoint_dir and noise.checkpoint_every and (
        (r + 1) % noise.checkpoint_every == 0 or stopped or r + 1 == noise.max_rounds):
      host = to_host(run, count)
      checkpointing.save(checkpoint_dir, r, surrogate_state=run.state, arrays=_arrays(host),
                         history=run.history)
  delta, masks = per_sample(host if host is not None else to_host(run, count), images, groups)
  return GeneratorResult(delta=delta, masks=masks, history=run.history,
                         rounds=len(run.history), stopped_early=stopped, surrogate=sur,
                         surrogate_state=run.state)


def _report(noise, history: list[dict], metrics_path, on_round) -> None:
  """A finished round's line in the log, the metrics file and the caller's callback."""
  record = history[-1]
  logging.info("round %d/%d: surrogate accuracy on x+δ %.4f, train loss %.4f, "
               "pixels touched %.4f (%.1fs)", record["round"], noise.max_rounds,
               record["accuracy"], record["train_loss"], record["frac_masked"], record["seconds"])
  if metrics_path and jax.process_index() == 0:
    run_log.write_history(metrics_path, history)
  if on_round:
    on_round(record)


def as_float(images: np.ndarray) -> np.ndarray:
  """float32 images in [0, 1]; uint8 images (the written form) are converted."""
  return dataset.as_float(images) if images.dtype == np.uint8 else images


def layout_of(noise, mesh, n: int, class_wise: bool) -> resident.Layout:
  """How N rows fall into PGD batches over the mesh's devices.

  Class-wise batches are consecutive rows whatever the mesh: each batch's
  update of the shared class noise then sums the same images in the same
  order, and 1 and 8 devices give the same file.
  """
  batch = _pgd_batch(noise, mesh, n)
  return resident.Layout(n, batch, 1 if class_wise else mesh.devices.size)


def to_devices(mesh, run: Run, layout: resident.Layout | None) -> Run:
  """δ and its masks onto the devices for the rounds: row-sharded by `layout` (per image), or
  replicated (`None`, class-wise)."""
  put = lambda a: resident.to_devices(mesh, a, layout)
  return dataclasses.replace(run, delta=put(run.delta), union=put(run.union),
                             fixed_mask=put(run.fixed_mask))


def to_host(run: Run, count: int) -> Run:
  """δ and its masks back on the host: their first `count` (real) rows."""
  back = lambda a: resident.to_host(a, count)
  return dataclasses.replace(run, delta=back(run.delta), union=back(run.union),
                             fixed_mask=back(run.fixed_mask))


def _should_stop(noise, history: list[dict]) -> bool:
  """EM's stop test (surrogate accuracy on x + δ), once `min_rounds` rounds are done."""
  return len(history) >= noise.min_rounds and history[-1]["accuracy"] >= noise.stop_accuracy


def _arrays(run: Run) -> dict[str, np.ndarray]:
  return {"delta": run.delta, "union": run.union, "fixed_mask": run.fixed_mask}


def start_or_resume(noise, images, state, key, groups, num_classes, checkpoint_dir) -> Run:
  """Fresh noise and surrogate, or the newest checkpoint in `checkpoint_dir`."""
  last = checkpointing.latest_round(checkpoint_dir) if checkpoint_dir else None
  if last is not None:
    state, arrays, history = checkpointing.restore(checkpoint_dir, last, surrogate_template=state)
    logging.info("Resuming from the checkpoint of round %d in %s.", last + 1, checkpoint_dir)
    writable = {k: np.array(v) for k, v in arrays.items()}  # restored arrays may be read-only
    return Run(state, writable["delta"], writable["union"], writable["fixed_mask"], history,
               last + 1)
  n = num_classes if groups is not None else len(images)
  shape = (n,) + images.shape[1:]
  use_uniform = noise.init == "uniform" or (noise.init == "auto" and noise.mask_ratio >= 1.0)
  if use_uniform:
    delta = np.array(jax.random.uniform(jax.random.fold_in(key, 0x7FFFFFFF), shape, jnp.float32,
                                          -noise.epsilon, noise.epsilon))
    if groups is None:
      delta = _inside(images, delta)
  else:
    delta = np.zeros(shape, np.float32)
  masks = np.zeros(shape[:3], bool)
  return Run(state, delta, masks, masks.copy(), [], 0)


def prepare(steps: "_Steps", noise, sur_cfg, mesh, run: Run, images, labels, groups,
            key) -> Run:
  """Before round 0: pretrain on clean images, choose the fixed masks, put the sign init on them.

  A 'fixed' mask is only as good as the saliency it is ranked by: from an
  untrained surrogate it is close to arbitrary, so `pretrain_steps` first
  fits the surrogate to the clean task (its BatchNorm statistics recalibrated
  on the clean images) and the mask is then the top-k of its saliency.
  """
  state = _pretrain(steps, noise, sur_cfg, mesh, run.state, images, labels, key)
  keep = run.state if not noise.get("keep_pretrained", True) else state
  if noise.mask_schedule != "fixed":
    return dataclasses.replace(run, state=keep)
  fixed = _clean_masks(steps, noise, mesh, state, images, labels, groups, len(run.delta))
  delta, union = run.delta, run.union
  if noise.init == "sign":
    union = union | fixed
    signs = jax.random.rademacher(jax.random.fold_in(key, 0x5167), delta.shape, jnp.float32)
    delta = np.asarray(signs) * np.float32(noise.epsilon) * fixed[..., None]
    if groups is None:
      delta = _inside(images, delta)
  return dataclasses.replace(run, state=keep, fixed_mask=fixed, delta=delta.astype(np.float32),
                             union=union)


def _pretrain(steps: "_Steps", noise, sur_cfg, mesh, state, images, labels, key):
  """`pretrain_steps` surrogate steps on clean images, in calls of the round's compiled shape."""
  calls = -(-int(noise.get("pretrain_steps", 0)) // noise.train_steps)
  if not calls:
    return state
  batch = sharding.round_up(sur_cfg.batch_size, mesh.devices.size)
  put = lambda a: sharding.shard_batch(mesh, a, axis=1)
  zero = sharding.replicate(mesh, np.zeros((1,) + images.shape[1:], np.float32))
  index = put(np.zeros((noise.train_steps, batch), np.int32))
  for c in range(calls):
    idx = _train_batches(len(images), batch, noise.train_steps,
                         jax.random.fold_in(key, 0xC1EA0000 + c))
    state, metrics = steps.train(state, put(_rows(images, idx)), put(labels[idx]), zero, index)
  logging.info("pretrained the surrogate for %d steps on clean images: last loss %.4f, "
               "accuracy %.4f", calls * noise.train_steps, float(metrics["loss"]),
               float(metrics["accuracy"]))
  if sur_cfg.get("bn_recalibration"):
    idx = _recalibration_images(len(images), sur_cfg.bn_recalibration, mesh, key)
    state = steps.recalibrate(state, sharding.shard_batch(mesh, _rows(images, idx)), zero,
                              sharding.shard_batch(mesh, np.zeros(len(idx), np.int32)))
  return state


def _train_batches(n: int, batch: int, steps: int, key) -> np.ndarray:
  """(steps, batch) indices: consecutive slices of fresh permutations of range(n)."""
  needed = steps * batch
  perms = [np.asarray(jax.random.permutation(jax.random.fold_in(key, i), n))
           for i in range(math.ceil(needed / n))]
  return np.concatenate(perms)[:needed].reshape(steps, batch)


def _one_round(steps: _Steps, noise, sur_cfg, mesh, layout, run: Run, images, labels, groups,
               key, r: int, progress: bool) -> Run:
  """Surrogate training, then a PGD round over all samples, then accuracy on x + δ.

  δ stays on the devices: training gathers its minibatches' noise there.
  """
  start = time.time()
  batch = sharding.round_up(sur_cfg.batch_size, mesh.devices.size)
  idx = _train_batches(len(images), batch, noise.train_steps, key)
  put = lambda a: sharding.shard_batch(mesh, a, axis=1)
  state, train_metrics = steps.train(run.state, put(_rows(images, idx)), put(labels[idx]),
                                     run.delta, put(_noise_index(idx, groups)))
  if sur_cfg.get("bn_recalibration"):
    state = _recalibrate(steps, mesh, state, images, run, groups, sur_cfg.bn_recalibration, key)
  run = dataclasses.replace(run, state=state)
  eot_key = jax.random.fold_in(key, 0xE07) if noise.get("eot_samples", 0) else None
  pgd_pass(steps, noise, mesh, run, images, labels, groups, r, progress, eot_key)
  accuracy = surrogate_accuracy(steps, noise, mesh, run, images, labels, groups)
  count = len(images) if groups is None else run.delta.shape[0] - 1
  record = {"round": r + 1, "accuracy": accuracy,
            "train_loss": float(train_metrics["loss"]),
            "train_accuracy": float(train_metrics["accuracy"]),
            **resident.stats(run.delta, run.union, count), "seconds": time.time() - start}
  return dataclasses.replace(run, history=run.history + [record], next_round=r + 1)


def _rows(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
  """float32 images of rows `idx` (the host keeps uint8 images as they are)."""
  return as_float(images[idx])


def _inside(images: np.ndarray, delta: np.ndarray) -> np.ndarray:
  """Per-image δ with x + δ in [0, 1]."""
  x = as_float(images)
  return np.clip(x + delta, 0.0, 1.0) - x


def _noise_index(idx: np.ndarray, groups) -> np.ndarray:
  """Which row of the devices' δ each image of `idx` reads: its class, or itself."""
  return (groups[idx] if groups is not None else idx).astype(np.int32)


def _recalibrate(steps: _Steps, mesh, state, images, run: Run, groups, count: int, key):
  """Exact BatchNorm statistics on `count` random perturbed training images."""
  idx = _recalibration_images(len(images), count, mesh, key)
  put = lambda a: sharding.shard_batch(mesh, a)
  return steps.recalibrate(state, put(_rows(images, idx)), run.delta,
                           put(_noise_index(idx, groups)))


def _recalibration_images(n: int, count: int, mesh, key) -> np.ndarray:
  """Indices of the `count` random images (divisible by devices) BatchNorm is set from."""
  count = sharding.round_up(min(count, n), mesh.devices.size)
  return _train_batches(n, count, 1, jax.random.fold_in(key, 0xB0B))[0]


def _pgd_batch(noise, mesh, n: int) -> int:
  """Images per PGD / evaluation call: at most `pgd_batch_size`, divisible by devices, and
  as even as the fewest calls allow, so that the last call is not mostly padding.

  BreastMNIST's 546 images at 256 per call were 3 calls of 256: 222 padded
  images, 41% more PGD work than needed; balanced they are 3 calls of 182
  (`python -m benchmarks.bench_generate`). Still one shape, one compilation.
  """
  ndev = mesh.devices.size
  cap = sharding.round_up(min(noise.pgd_batch_size, n), ndev)
  calls = -(-n // cap)
  return sharding.round_up(-(-n // calls), ndev)


def _batches(layout: resident.Layout, n: int):
  """(b, rows of batch b wrapped into range(n), which rows are real) for every batch."""
  for b in range(layout.calls):
    rows = layout.rows(b)
    yield b, rows % n, rows < n


def pgd_pass(steps: _Steps, noise, mesh, run: Run, images, labels, groups, r, progress,
             key=None):
  """Updates the device-resident run.delta / run.union, one compiled PGD round per batch.

  `key`: the round's randomness for `eot_samples` (a batch folds in its first row).
  """
  n = len(images)
  layout = layout_of(noise, mesh, n, groups is not None)
  bar = tqdm.tqdm(total=n, desc=f"round {r + 1}/{noise.max_rounds}", unit="img",
                  disable=terminal.bar_disable(progress and jax.process_index() == 0),
                  leave=False)
  fixed = run.fixed_mask if noise.mask_schedule == "fixed" else None
  put = lambda a: sharding.shard_batch(mesh, a)
  for b, idx, real in _batches(layout, n):
    jax.block_until_ready(run.delta)  # one batch in flight: its inputs, not the whole pass
    x, y = put(_rows(images, idx)), put(labels[idx])
    k = None if key is None else sharding.replicate(
        mesh, jax.random.fold_in(key, int(layout.rows(b)[0])))
    if groups is None:
      run.delta, run.union = steps.pgd_rows(run.state, x, y, run.delta, run.union, fixed, b, k,
                                            mesh=mesh)
    else:  # padded rows take the spare class, which is dropped
      g = np.where(real, groups[idx], run.delta.shape[0] - 1).astype(np.int32)
      run.delta, m = steps.pgd_round(run.state, x, y, run.delta, fixed, put(g), k)
      run.union = steps.union(run.union, m)
    bar.update(int(real.sum()))
  bar.close()


def surrogate_accuracy(steps: _Steps, noise, mesh, run: Run, images, labels, groups) -> float:
  """The surrogate's accuracy on x + δ, summed on the devices (one scalar to the host)."""
  n = len(images)
  layout = layout_of(noise, mesh, n, groups is not None)
  put = lambda a: sharding.shard_batch(mesh, a)
  total = 0
  for b, idx, real in _batches(layout, n):
    jax.block_until_ready(total)  # one batch in flight, as in `pgd_pass`
    index = None if groups is None else put(_noise_index(idx, groups))
    total = total + steps.correct(run.state, put(_rows(images, idx)), put(labels[idx]),
                                  run.delta, index, b, put(real), chunk=layout.chunk,
                                  ndev=layout.ndev)
  return float(total) / n


def _clean_masks(steps: _Steps, noise, mesh, state, images, labels, groups, num) -> np.ndarray:
  """Top-k masks of the clean images' saliency (per sample, or summed per class)."""
  n = len(images)
  sal = np.zeros(images.shape[:3], np.float32)
  for _, idx, real in _batches(layout_of(noise, mesh, n, groups is not None), n):
    s = steps.clean_saliency(state, sharding.shard_batch(mesh, _rows(images, idx)),
                             sharding.shard_batch(mesh, labels[idx]))
    sal[idx[real]] = sharding.to_host(s)[real]
  if groups is not None:
    sal = np.stack([sal[groups == c].sum(0) for c in range(num)])
  return np.asarray(masks_lib.topk_mask(jnp.asarray(sal), float(noise.mask_ratio)))


def per_sample(run: Run, images, groups) -> tuple[np.ndarray, np.ndarray]:
  """Per-sample δ with x + δ in [0, 1] (class-wise noise expanded by label) and masks.

  Class-wise noise is expanded a chunk of images at a time, so that no float
  copy of the whole dataset is made beside the result.
  """
  if groups is None:
    return np.asarray(run.delta, np.float32), run.union.copy()
  delta = np.empty(images.shape, np.float32)
  chunk = dataset.rows_per_chunk(images.shape)
  for start in range(0, len(images), chunk):
    part = slice(start, start + chunk)
    x = as_float(images[part])
    delta[part] = np.clip(x + run.delta[groups[part]], 0.0, 1.0) - x
  return delta, run.union[groups]
