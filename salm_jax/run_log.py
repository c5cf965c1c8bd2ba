"""Per-round metrics of long runs: a JSON-lines file, and TensorBoard when available.

`metrics.jsonl` is rewritten whole (atomically) each round from the run's
history, so after a resume it holds exactly the rounds the checkpoint holds,
never a duplicate. TensorBoard event files are written too when a standard
writer (`tensorboardX`, or PyTorch's) can be imported; salm_jax does not
depend on either.
"""
from __future__ import annotations

import json
import os

from absl import logging

from salm_jax import atomic


def write_history(path: str, history: list[dict]) -> None:
  atomic.write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))


def read_history(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def tensorboard_writer(logdir: str):
  """A callback `record -> None` writing scalars to TensorBoard, or None if no writer exists."""
  try:
    from tensorboardX import SummaryWriter  # pytype: disable=import-error
  except ImportError:
    try:
      from torch.utils.tensorboard import SummaryWriter  # pytype: disable=import-error
    except ImportError:
      return None
  writer = SummaryWriter(logdir)
  logging.info("Writing TensorBoard events to %s", logdir)

  def write(record: dict) -> None:
    for name, value in record.items():
      if name != "round" and isinstance(value, (int, float)):
        writer.add_scalar(f"generator/{name}", value, record["round"])
    writer.flush()
  return write
