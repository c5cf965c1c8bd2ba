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
import numpy as np
from absl import logging
from orbax.checkpoint.experimental import v1 as ocp

from salm_jax import sharding

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


def save(directory: str, round_index: int, *, surrogate_state, arrays: dict[str, np.ndarray],
         history: list[dict], keep: int = 2) -> str:
  """Writes checkpoint `round_index` and keeps only the newest `keep`."""
  leaves = jax.tree.leaves(surrogate_state)
  tree = {
      "surrogate": {f"{i:05d}": sharding.to_host(leaf) for i, leaf in enumerate(leaves)},
      "arrays": {k: np.asarray(v) for k, v in arrays.items()},
      "round": int(round_index),
      "history": json.dumps(history),
  }
  directory = os.path.abspath(directory)  # Orbax needs absolute paths
  path = os.path.join(directory, f"round_{round_index:06d}")
  if os.path.exists(path):
    shutil.rmtree(path)
  os.makedirs(directory, exist_ok=True)
  with _quiet():
    ocp.save(path, tree)
  for _, old in _round_dirs(directory)[:-keep]:
    shutil.rmtree(old, ignore_errors=True)
  return path


def restore(directory: str, round_index: int, *, surrogate_template):
  """(surrogate_state, arrays, history) of checkpoint `round_index`.

  `surrogate_template` is a freshly built surrogate state of the same config;
  its tree structure receives the saved leaves.
  """
  path = os.path.join(os.path.abspath(directory), f"round_{round_index:06d}")
  with _quiet():
    tree = ocp.load(path)
  leaves, treedef = jax.tree.flatten(surrogate_template)
  saved = [tree["surrogate"][k] for k in sorted(tree["surrogate"])]
  if len(saved) != len(leaves):
    raise ValueError(f"Checkpoint {path} holds {len(saved)} surrogate arrays but the "
                     f"config's surrogate has {len(leaves)}: was the config changed?")
  restored = []
  for i, (s, t) in enumerate(zip(saved, leaves)):
    s, t = np.asarray(s), np.asarray(t)
    if s.shape != t.shape:
      raise ValueError(f"Checkpoint {path}: surrogate array {i} has shape {s.shape}, the "
                       f"config's surrogate expects {t.shape}: was the config changed?")
    restored.append(s.astype(t.dtype))
  state = jax.tree.unflatten(treedef, restored)
  arrays = {k: np.asarray(v) for k, v in tree["arrays"].items()}
  return state, arrays, json.loads(tree["history"])


@contextlib.contextmanager
def _quiet():
  """Orbax logs every save at INFO through absl; keep the run's log readable."""
  level = logging.get_verbosity()
  logging.set_verbosity(min(level, logging.WARNING))  # absl: larger = more verbose
  try:
    yield
  finally:
    logging.set_verbosity(level)
