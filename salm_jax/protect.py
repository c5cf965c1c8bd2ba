"""Protecting a dataset end to end: load, generate noise, quantize, write, measure.

This is what `launch/protect.py` (and `salm-protect`) runs. The noise is made
once for the union of the configured splits (default: train only); the other
splits are copied bit for bit. The output is a MedMNIST-format npz plus
`noise.npz` and `manifest.json` (see `salm_jax.data.protected`), and a small
`preview.npz` of examples for the report. The noise comes from
`config.noise.method` (`salm_jax.noise.methods`): SALM/EM or a baseline, all
written, measured and bounded the same way, each under its own L∞ bound.
"""
from __future__ import annotations

import dataclasses
import functools
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from salm_jax import atomic
from salm_jax import protect_streamed
from salm_jax import data as data_lib
from salm_jax import run_log
from salm_jax import terminal
from salm_jax import workdir as wd
from salm_jax.evaluation import utility
from salm_jax.noise import budget
from salm_jax.noise import methods
from salm_jax.noise.salm import saliency as saliency_lib

PREVIEW_COUNT = 8


def protect(config: ml_collections.ConfigDict, workdir: str, *, overwrite: bool = False,
            progress: bool = True) -> dict:
  """Generates the noise and writes the protected dataset into `workdir`; returns the manifest.

  A run killed mid-way resumes from its last checkpoint when started again
  with the same config and workdir.
  """
  resolved = budget.resolve(config)  # the L∞ bound in force, if derived from a PSNR
  methods.check_settings(resolved)    # a bad setting is refused before any write
  wd.start_stage(workdir, config, done_file=wd.DONE_PROTECT,
                 outputs=(wd.PROTECTED, wd.CHECKPOINTS, wd.METRICS, wd.PREVIEW, wd.TENSORBOARD),
                 overwrite=overwrite, resumable=(wd.CHECKPOINTS,))
  config = resolved  # the saved config.json keeps the user's own fields
  # SALM on the train split reads an npz's rows as it needs them and writes by windows
  dataset = data_lib.load_from_config(config.dataset, lazy=protect_streamed.applies(config))
  splits = _check_splits(config.noise.splits, dataset)
  protect_streamed.check(config, dataset)
  streamed = protect_streamed.applies(config, dataset)
  if streamed:  # uint8, as written: SALM converts each batch on the devices (methods.py)
    images = data_lib.as_nhwc(dataset.splits[splits[0]].images)
  else:
    images = np.concatenate([data_lib.as_nhwc(dataset.splits[s].images) for s in splits])
  labels = np.concatenate([dataset.splits[s].labels for s in splits])
  epsilon = methods.linf_bound(config)
  logging.info("Protecting %s (%s, %d images of %dpx, splits %s) with %s, mask ratio %s, "
               "ε = %.4f.", dataset.name, dataset.task, len(images), dataset.image_size,
               ",".join(splits), methods.method_name(config), config.noise.mask_ratio, epsilon)
  on_round = _tensorboard(config, workdir)  # before the clock: importing a writer takes seconds
  start = time.time()
  bar = terminal.RoundsBar(config.noise.max_rounds, progress and jax.process_index() == 0)
  try:
    result = methods.generate_noise(
        config, images, labels, task=dataset.task, num_classes=dataset.num_classes,
        checkpoint_dir=wd.path(workdir, wd.CHECKPOINTS),
        metrics_path=wd.path(workdir, wd.METRICS),
        progress=progress, on_round=run_log.chain(on_round, bar), expand=not streamed)
  finally:
    bar.close()
  seconds = time.time() - start
  extra = {"rounds": result.rounds, "stopped_early": result.stopped_early,
           "final_surrogate_accuracy": result.history[-1]["accuracy"] if result.history
                                       else None,
           "generator_seconds": seconds, **methods.manifest_fields(config, result)}
  if streamed:
    return _write_streamed(workdir, dataset, result, epsilon, config, extra)
  protected, masks = _split_back(dataset, splits, result, epsilon)
  stats = {s: utility.image_stats(dataset.splits[s].images, protected[s]) for s in splits}
  manifest = data_lib.write_protected(
      wd.path(workdir, wd.PROTECTED), dataset, protected, masks, config=wd.config_dict(config),
      split_stats=stats, extra=extra, overwrite=True)
  _write_preview(workdir, dataset, splits[0], protected[splits[0]], masks[splits[0]], result,
                 config)
  return manifest


def _write_streamed(workdir, dataset, result, epsilon, config, extra) -> dict:
  """Every process hands in its rows; process 0 writes the files (protect_streamed.py)."""
  manifest, first = protect_streamed.write(wd.path(workdir, wd.PROTECTED), dataset, result,
                                            epsilon, config=wd.config_dict(config), extra=extra)
  if manifest is None:
    return {}
  split = protect_streamed.SPLIT
  clean = dataset.splits[split].images[:PREVIEW_COUNT]
  local = jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), result.surrogate_state)
  result = dataclasses.replace(result, surrogate_state=local)  # the preview runs here alone
  _write_preview(workdir, dataset, split, first[1].reshape(clean.shape), first[2], result,
                 config)
  return manifest


def _check_splits(splits, dataset) -> list[str]:
  splits = [splits] if isinstance(splits, str) else list(splits)
  unknown = [s for s in splits if s not in dataset.splits]
  if not splits or unknown or len(set(splits)) != len(splits):
    raise ValueError(f"noise.splits must be distinct names among {sorted(dataset.splits)}; "
                     f"got {splits}.")
  return splits


def _split_back(dataset, splits, result, epsilon):
  """Cuts the generated noise back into splits and quantizes it to uint8."""
  protected, masks, start = {}, {}, 0
  for s in splits:
    clean = dataset.splits[s].images
    stop = start + len(clean)
    protected[s] = data_lib.quantize(clean, result.delta[start:stop], epsilon)
    masks[s] = result.masks[start:stop]
    start = stop
  return protected, masks


def _write_preview(workdir, dataset, split, protected, masks, result, config) -> None:
  """The first examples with the final surrogate's saliency on the clean images.

  A model-free method has no surrogate: its saliency is all zeros.
  """
  clean = dataset.splits[split].images[:PREVIEW_COUNT]
  labels = dataset.splits[split].labels[:PREVIEW_COUNT]
  if result.surrogate is None:
    sal = np.zeros(clean.shape[:3], np.float32)
  else:
    sal = _preview_saliency(result.surrogate)(
        result.surrogate_state, data_lib.as_float(clean), labels)
  noise = protected[:PREVIEW_COUNT].astype(np.int16) - clean.astype(np.int16)
  atomic.save_npz(wd.path(workdir, wd.PREVIEW), clean=clean, protected=protected[:PREVIEW_COUNT],
                  noise=noise.astype(np.int8), mask=masks[:PREVIEW_COUNT],
                  saliency=np.asarray(sal), labels=labels)


@functools.lru_cache(maxsize=8)
def _preview_saliency(sur):
  """Jitted `(state, images, labels) -> saliency` of a surrogate.

  One compilation instead of dispatching (and compiling) every primitive of
  the forward and backward pass one by one, which is slow on a cold start.
  """
  def fn(state, images, labels):
    return saliency_lib.saliency_map(sur.logits_fn(state), images, labels, task=sur.task)
  return jax.jit(fn)


def _tensorboard(config, workdir):
  if not config.get("tensorboard", True) or jax.process_index() != 0:
    return None
  return run_log.tensorboard_writer(wd.path(workdir, wd.TENSORBOARD))
