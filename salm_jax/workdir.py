"""Where each entry point reads and writes inside a workdir.

One workdir holds one experiment: `protect` fills `protected/` and
`checkpoints/`, `evaluate` fills `evaluation/`, `sweep` fills `sweep/`,
`report` fills `report/`. Each later step reads what the earlier ones wrote,
so these paths are the contract between them.
"""
from __future__ import annotations

import json
import os
import shutil

from salm_jax import atomic

CONFIG = "config.json"                # the config in force for the run
PROTECTED = "protected"               # <name>.npz (MedMNIST format), noise.npz, manifest.json
CHECKPOINTS = "checkpoints"           # Orbax checkpoints of the generator
METRICS = "metrics.jsonl"             # one JSON object per generator round
EVALUATION = "evaluation"             # results.json, results.md, curves.json, figures
SWEEP = "sweep"                       # points/<i>/..., table.json, table.md, plot png
REPORT = "report"                     # index.md, index.html, figures/*.png
DONE_PROTECT = os.path.join(PROTECTED, "manifest.json")
DONE_EVALUATE = os.path.join(EVALUATION, "results.json")


def path(workdir: str, *parts: str) -> str:
  """An absolute path inside `workdir` (Orbax refuses relative checkpoint paths)."""
  return os.path.abspath(os.path.join(os.path.expanduser(workdir), *parts))
PREVIEW = "preview.npz"               # a few examples: clean, saliency, mask, noise, protected
TENSORBOARD = "tensorboard"           # generator events; victims' are in evaluation/tensorboard
LOG = "log.txt"                       # every INFO line of every command run on the workdir


def config_dict(config) -> dict:
  """The config as plain JSON-able data (tuples become lists)."""
  return atomic.to_jsonable(config.to_dict())


def read_json(file_path: str):
  """A JSON file's content, or a ValueError naming the file if it is not valid JSON."""
  try:
    with open(file_path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{file_path}: not valid JSON: {e}") from e


def read_config(workdir: str, config_file: str = CONFIG) -> dict | None:
  p = path(workdir, config_file)
  return read_json(p) if os.path.exists(p) else None


def start_stage(workdir: str, config, *, done_file: str, outputs: tuple[str, ...],
                overwrite: bool, resumable: tuple[str, ...] = (),
                config_file: str = CONFIG) -> None:
  """Checks a stage may run in `workdir`, then saves the config in force to `config_file`.

  A finished stage (its `done_file` exists) is never clobbered unless
  `overwrite`, which removes the stage's `outputs` first. Leftovers of an
  unfinished run (`resumable`, e.g. checkpoints) are only resumed under the
  same config: a changed config must use a new workdir or `overwrite`.
  """
  if os.path.exists(path(workdir, done_file)):
    if not overwrite:
      raise FileExistsError(
          f"{path(workdir, done_file)} exists: {workdir} already holds a finished run. "
          "Pass --overwrite to replace it, or choose another --workdir.")
  current = config_dict(config)
  saved = read_config(workdir, config_file)
  leftovers = [p for p in resumable if os.path.exists(path(workdir, p))]
  if overwrite:
    for out in outputs:
      target = path(workdir, out)
      if os.path.isdir(target):
        shutil.rmtree(target)
      elif os.path.exists(target):
        os.remove(target)
  elif leftovers and saved is not None and saved != current:
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    raise ValueError(
        f"{workdir} holds an unfinished run ({', '.join(leftovers)}) made with a different "
        f"config (changed: {', '.join(changed)}). Resume with the same config, use another "
        "--workdir, or pass --overwrite.")
  atomic.write_json(path(workdir, config_file), current)


def require(workdir: str, done_file: str, hint: str) -> None:
  """Raises a clear error if an earlier stage's output is missing."""
  if not os.path.exists(path(workdir, done_file)):
    raise FileNotFoundError(f"{path(workdir, done_file)} not found: {hint}.")
