"""Generator checkpoints with Orbax's V1 API: resume a killed run exactly.

A checkpoint holds everything the next round depends on: surrogate
parameters, BatchNorm statistics, optimizer state, the noise, the masks, the
round number, the PRNG key and the per-round history. Orbax writes each
checkpoint to a temporary folder and renames it when complete, so a kill
mid-save leaves the previous checkpoint intact.

The surrogate's state is stored as its flat list of leaves; it is restored
into the structure of a freshly built surrogate, which the caller rebuilds
from the same config.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil

import jax
from absl import logging
from orbax.checkpoint.experimental import v1 as ocp


_NAME = re.compile(r"^round_(\d{6})$")


def _round_dirs(directory: str) -> list[tuple[int, str]]:
  if not os.path.isdir(directory):
    return []
  found = []
  for name in os.listdir(directory):
    match = _NAME.match(name)
    path = os.path.join(directory, name)
    if match and ocp.is_orbax_checkpoint(path):
      found.append((int(match.group(1)), path))
  return sorted(found)


def latest_round(directory: str) -> int | None:
  """The last completed round with a checkpoint, or None."""
  found = _round_dirs(directory)
  return found[-1][0] if found else None


def save(directory: str, round_index: int, *, surrogate_state, arrays: dict[str, jax.Array],
         history: list[dict], layout: str = "", keep: int = 2) -> str:
  """Writes checkpoint `round_index` and keeps only the newest `keep`.

  `arrays` are device arrays: Orbax writes each process's own shards, so no
  process gathers another's rows. `layout` names how their rows are laid out
  (resident.py); a resume refuses a checkpoint of another layout.
  """
  tree = {
      "surrogate": {f"{i:05d}": leaf for i, leaf in enumerate(jax.tree.leaves(surrogate_state))},
      "arrays": dict(arrays),
      "round": int(round_index),
      "history": json.dumps(history),
      "layout": layout,
  }
  directory = os.path.abspath(directory)  # Orbax needs absolute paths
  path = os.path.join(directory, f"round_{round_index:06d}")
  if jax.process_index() == 0 and os.path.exists(path):
    shutil.rmtree(path)
  os.makedirs(directory, exist_ok=True)
  with _quiet():
    ocp.save(path, tree)
  if jax.process_index() == 0:
    for _, old in _round_dirs(directory)[:-keep]:
      shutil.rmtree(old, ignore_errors=True)
  return path


def restore(directory: str, round_index: int, *, surrogate_template, arrays_template,
            layout: str = ""):
  """(surrogate_state, arrays, history) of checkpoint `round_index`, onto the devices and
  shardings of the templates.

  `surrogate_template` is a freshly built (replicated) surrogate state of the
  same config; `arrays_template` the fresh run's device arrays. A checkpoint
  whose shapes or row layout differ is refused with the reason.
  """
  path = os.path.join(os.path.abspath(directory), f"round_{round_index:06d}")
  with _quiet():
    saved = ocp.metadata(path).metadata
  leaves, treedef = jax.tree.flatten(surrogate_template)
  _check(path, saved, leaves, arrays_template)
  abstract = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding)
  target = {"surrogate": {f"{i:05d}": abstract(leaf) for i, leaf in enumerate(leaves)},
            "arrays": {k: abstract(v) for k, v in arrays_template.items()},
            "round": 0, "history": "", "layout": ""}
  with _quiet():
    tree = ocp.load(path, target)
  if layout and tree["layout"] != layout:
    raise ValueError(f"Checkpoint {path} lays its rows out as {tree['layout']}, this run as "
                     f"{layout}: resume on the same number of devices and processes with "
                     "the same pgd_batch_size, or start a new workdir.")
  state = jax.tree.unflatten(treedef, [tree["surrogate"][f"{i:05d}"]
                                       for i in range(len(leaves))])
  return state, tree["arrays"], json.loads(tree["history"])


def _check(path, saved, leaves, arrays_template) -> None:
  """Refuses a checkpoint written by another config or for other data."""
  names = sorted(saved["surrogate"])
  if len(names) != len(leaves):
    raise ValueError(f"Checkpoint {path} holds {len(names)} surrogate arrays but the "
                     f"config's surrogate has {len(leaves)}: was the config changed?")
  for i, (name, leaf) in enumerate(zip(names, leaves)):
    if tuple(saved["surrogate"][name].shape) != tuple(leaf.shape):
      raise ValueError(f"Checkpoint {path}: surrogate array {i} has shape "
                       f"{tuple(saved['surrogate'][name].shape)}, the config's surrogate "
                       f"expects {tuple(leaf.shape)}: was the config changed?")
  for k, v in arrays_template.items():
    if tuple(saved["arrays"][k].shape) != tuple(v.shape):
      raise ValueError(f"Checkpoint {path}: {k} has shape {tuple(saved['arrays'][k].shape)}, "
                       f"this run needs {tuple(v.shape)}: resume with the same data, devices "
                       "and pgd_batch_size, or start a new workdir.")


@contextlib.contextmanager
def _quiet():
  """Orbax logs every save at INFO through absl; keep the run's log readable."""
  level = logging.get_verbosity()
  logging.set_verbosity(min(level, logging.WARNING))  # absl: larger = more verbose
  try:
    yield
  finally:
    logging.set_verbosity(level)
