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
round to the last, beside the images (resident.py): the host reads the images
once, as given (uint8 stays uint8), and sees δ only at the end.

Under several processes (`jax.distributed`) each process reads only the
images of its own devices' rows, and returns only those rows' noise
(`GeneratorResult.rows`). The passes over the rows live in rounds.py, their
compiled programs in steps.py; a method built from them (`adversarial.py`)
needs no branch in this loop.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from salm_jax import checkpointing
from salm_jax import run_log
from salm_jax import sharding
from salm_jax import tasks
from salm_jax.data import dataset
from salm_jax.noise.salm import masks as masks_lib
from salm_jax.noise.salm import pgd
from salm_jax.noise.salm import resident
from salm_jax.noise.salm import rounds
from salm_jax.noise.salm import starts
from salm_jax.noise.salm import steps as steps_lib
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
  """Per-sample noise (x + δ in [0, 1]), the union of masks used, and the run's history.

  Under several processes `delta` and `masks` hold this process's rows only, `rows` says
  which; in one process they hold every row and `rows` is None. Made with `expand=False`,
  class-wise noise is `class_noise` instead, and `delta` and `masks` are None.
  """
  delta: np.ndarray | None     # (N, H, W, C) float32
  masks: np.ndarray | None     # (N, H, W) bool
  history: list[dict]
  rounds: int
  stopped_early: bool
  surrogate: surrogate_lib.Surrogate
  surrogate_state: Any
  rows: np.ndarray | None = None
  class_noise: rounds.ClassNoise | None = None


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
  if (not hasattr(images, "__getitem__") or len(np.shape(images)) != 4
      or getattr(images, "dtype", None) not in (np.float32, np.uint8)):
    raise ValueError(f"images must be (N, H, W, C), float32 in [0, 1] or uint8; got "
                     f"{getattr(images, 'dtype', type(images))} {np.shape(images)}.")
  if isinstance(images, np.ndarray) and images.dtype == np.float32 and (
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


def compiled_steps(sur: surrogate_lib.Surrogate, noise: ml_collections.ConfigDict):
  """The run's compiled programs (steps.py) for `sur` and the PGD fields of `noise`."""
  defaults = default_config()
  return steps_lib.compiled(sur, tuple((f, noise.get(f, defaults[f]))
                                       for f in steps_lib.PGD_FIELDS))


@dataclasses.dataclass
class Run:
  """The state of one generator run (everything a checkpoint holds), on the devices.

  Per-image δ and masks are laid out by rows (resident.py); class-wise ones are replicated,
  with a spare row.
  """
  state: Any
  delta: Any                 # (N' | K + 1, H, W, C) float32
  union: Any                 # (N' | K + 1, H, W) bool
  fixed_mask: Any            # (N' | K + 1, H, W) bool, used by mask_schedule='fixed'
  history: list[dict]
  next_round: int


def generate(config: ml_collections.ConfigDict, images: np.ndarray, labels: np.ndarray, *,
             task: str, num_classes: int, checkpoint_dir: str | None = None,
             metrics_path: str | None = None, progress: bool = True, mesh=None,
             on_round: Callable[[dict], None] | None = None,
             expand: bool = True) -> GeneratorResult:
  """Generates SALM (or EM, with mask_ratio=1) noise for `images`.

  Args:
    config: experiment config with `noise` (see `default_config`), `surrogate`
      (see `surrogate.default_config`) and `seed`.
    images: (N, H, W, C), float32 in [0, 1] or uint8, or a reader whose `images[rows]`
      loads just those rows (each process asks for its own rows only).
    labels: (N, L) MedMNIST labels.
    task, num_classes: the MedMNIST task type and its number of classes/labels.
    checkpoint_dir: where to save and resume from (None: no checkpoints).
    metrics_path: a JSON-lines file rewritten with the history every round.
    progress: show a progress bar per round.
    mesh: a 1-D 'data' mesh; default: all devices.
    on_round: called with each round's metrics (e.g. a TensorBoard writer).
    expand: False: class-wise noise comes back per class (`class_noise`), without a float
      copy of the rows (what the streamed write quantizes a window at a time).
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
  table = rounds.load_table(mesh, layout_of(noise, mesh, len(images)), images,
                            labels, groups)
  run = start_or_resume(config, steps, table, sharding.replicate(mesh, state), key,
                        num_classes, checkpoint_dir, images=images, task=task)
  stopped = bool(run.history) and _should_stop(noise, run.history)
  for r in range(run.next_round, noise.max_rounds):
    if stopped:
      break
    record = rounds.one_round(steps, noise, config.surrogate, run, table,
                              jax.random.fold_in(key, r), r, progress)
    run.history, run.next_round = run.history + [record], r + 1
    _report(noise, run.history, metrics_path, on_round)
    stopped = _should_stop(noise, run.history)
    if checkpoint_dir and noise.checkpoint_every and (
        (r + 1) % noise.checkpoint_every == 0 or stopped or r + 1 == noise.max_rounds):
      save(checkpoint_dir, r, run, table.layout)
  rows, delta, masks, class_noise = rounds.result_rows(run, table, expand)
  return GeneratorResult(delta=delta, masks=masks, history=run.history,
                         rounds=len(run.history), stopped_early=stopped, surrogate=sur,
                         surrogate_state=run.state,
                         rows=None if len(rows) == len(images) else rows,
                         class_noise=class_noise)


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


def layout_of(noise, mesh, n: int) -> resident.Layout:
  """How N rows fall into PGD batches over the mesh's devices (resident.py).

  Batches are consecutive rows whatever the mesh, so each batch's update of
  the shared class noise sums the same images in the same order; with the
  same batch size, 1 and 8 devices give the same file.
  """
  return resident.Layout(n, _pgd_batch(noise, mesh, n), mesh.devices.size)


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


def _should_stop(noise, history: list[dict]) -> bool:
  """EM's stop test (surrogate accuracy on x + δ), once `min_rounds` rounds are done."""
  return len(history) >= noise.min_rounds and history[-1]["accuracy"] >= noise.stop_accuracy


def save(checkpoint_dir: str, r: int, run: Run, layout: resident.Layout) -> None:
  """Checkpoint of round r: each process writes its own rows of the device arrays."""
  checkpointing.save(checkpoint_dir, r, surrogate_state=run.state,
                     arrays={"delta": run.delta, "union": run.union,
                             "fixed_mask": run.fixed_mask},
                     history=run.history, layout=json.dumps(dataclasses.asdict(layout)))


def start_or_resume(config, steps, table: rounds.Table, state, key, num_classes: int,
                    checkpoint_dir: str | None, *, images=None, task=None) -> Run:
  """The newest checkpoint in `checkpoint_dir`, or a fresh start (pretrained and masked as
  configured) on the devices."""
  last = checkpointing.latest_round(checkpoint_dir) if checkpoint_dir else None
  run = fresh(config.noise, table, state, key, num_classes)
  if last is None:
    return prepare_fresh(config, steps, table, run, key, images=images, task=task,
                         num_classes=num_classes)
  state, arrays, history = checkpointing.restore(
      checkpoint_dir, last, surrogate_template=run.state,
      arrays_template={"delta": run.delta, "union": run.union, "fixed_mask": run.fixed_mask},
      layout=json.dumps(dataclasses.asdict(table.layout)))
  logging.info("Resuming from the checkpoint of round %d in %s.", last + 1, checkpoint_dir)
  return Run(state, arrays["delta"], arrays["union"], arrays["fixed_mask"], history, last + 1)


def fresh(noise, table: rounds.Table, state, key, num_classes: int) -> Run:
  """Zero δ and masks on the devices, or uniform δ (init 'uniform', or 'auto' at ratio 1)."""
  use_uniform = noise.init == "uniform" or (noise.init == "auto" and noise.mask_ratio >= 1.0)
  ukey = jax.random.fold_in(key, 0x7FFFFFFF)
  shape = tuple(table.images.shape[1:])
  if table.class_wise:
    delta = np.zeros((num_classes,) + shape, np.float32)
    if use_uniform:
      delta = np.array(jax.random.uniform(ukey, delta.shape, jnp.float32, -noise.epsilon,
                                          noise.epsilon))
    masks = np.zeros(delta.shape[:3], bool)
    put = lambda a: resident.replicate(table.mesh, a)
    return Run(state, put(delta), put(masks), put(masks), [], 0)
  delta = _per_row(table, ukey, float(noise.epsilon), "uniform" if use_uniform else "zeros")
  return Run(state, delta, _like(table.real, shape[:2]), _like(table.real, shape[:2]), [], 0)


def prepare_fresh(config, steps, table: rounds.Table, run: Run, key, *, images, task,
                  num_classes) -> Run:
  """Before round 0: a transferable start (starts.py), then `prepare`."""
  noise = config.noise
  if noise.init in starts.PATTERNS:
    if table.class_wise:
      canvas = np.zeros((1,) + tuple(table.images.shape[1:]), np.float32)  # its shape only
      run.delta = resident.replicate(table.mesh, starts.transfer_start(
          config, canvas, None, task=task, num_classes=num_classes, groups=np.zeros(1)))
    else:
      own = table.layout.owned(table.mesh)
      if len(own) < table.n:
        raise ValueError(f"noise.init={noise.init!r} with per-image noise draws every "
                         "image's pattern at once: run it in one process.")
      start = starts.transfer_start(config, dataset.to_float(images), table.host_labels,
                                    task=task, num_classes=num_classes, groups=None)
      run.delta = resident.put(table.mesh, table.layout, own, start)
  return prepare(steps, noise, config.surrogate, table, run, key)


def prepare(steps, noise, sur_cfg, table: rounds.Table, run: Run, key) -> Run:
  """Before round 0: pretrain on clean images, choose the fixed masks, put the sign init on them.

  A 'fixed' mask is only as good as the saliency it is ranked by: from an
  untrained surrogate it is close to arbitrary, so `pretrain_steps` first
  fits the surrogate to the clean task (its BatchNorm statistics recalibrated
  on the clean images) and the mask is then the top-k of its saliency.
  """
  state = rounds.pretrain(steps, noise, sur_cfg, table, run.state, key)
  run.state = run.state if not noise.get("keep_pretrained", True) else state
  if noise.mask_schedule != "fixed":
    return run
  run.fixed_mask = rounds.clean_masks(steps, noise, table, state, run.fixed_mask)
  if noise.init != "sign":
    return run
  run.union = steps.union(run.union, run.fixed_mask)
  skey = jax.random.fold_in(key, 0x5167)
  if table.class_wise:
    fixed = resident.replicated_to_host(run.fixed_mask, run.fixed_mask.shape[0] - 1)
    signs = jax.random.rademacher(skey, fixed.shape + run.delta.shape[-1:], jnp.float32)
    run.delta = resident.replicate(table.mesh, (np.asarray(signs) * np.float32(noise.epsilon)
                                                * fixed[..., None]).astype(np.float32))
  else:
    run.delta = _per_row(table, skey, float(noise.epsilon), "sign", run.fixed_mask)
  return run


def _per_row(table: rounds.Table, key, epsilon: float, kind: str, fixed=None) -> jax.Array:
  """Per-image δ laid out like the images: zeros, or each row's own draw (uniform in ±ε, or
  ±ε signs on `fixed`) from fold_in(key, row), so no draw depends on the mesh; x + δ in
  [0, 1]."""
  return _draw_rows(table.images, table.row, table.real, fixed, key, np.float32(epsilon),
                    kind=kind)


@functools.partial(jax.jit, static_argnames=("kind",))
def _draw_rows(images, row, real, fixed, key, epsilon, *, kind):
  shape = images.shape[1:]
  if kind == "zeros":
    return jnp.zeros(images.shape, jnp.float32) * real[:, None, None, None]
  if kind == "uniform":
    draw = lambda k: jax.random.uniform(k, shape, jnp.float32, -epsilon, epsilon)
  else:
    draw = lambda k: jax.random.rademacher(k, shape, jnp.float32) * epsilon
  d = jax.vmap(lambda r: draw(jax.random.fold_in(key, r)))(row)
  if fixed is not None:
    d = d * fixed[..., None]
  x = steps_lib.as_float(images)
  return jnp.where(real[:, None, None, None], jnp.clip(x + d, 0.0, 1.0) - x, 0.0)


def _like(real: jax.Array, hw: tuple[int, int]) -> jax.Array:
  """All-False masks laid out like the rows."""
  return _false_masks(real, hw=hw)


@functools.partial(jax.jit, static_argnames=("hw",))
def _false_masks(real, *, hw):
  return jnp.zeros(real.shape + hw, bool) & real[:, None, None]
