"""Per-round metrics of long runs: a JSON-lines file, and TensorBoard when available.

`metrics.jsonl` is rewritten whole (atomically) each round from the run's
history, so after a resume it holds exactly the rounds the checkpoint holds,
never a duplicate. TensorBoard event files are written too when a standard
writer (`tensorboardX`, which needs only numpy and protobuf and comes with the
`test` extra, or PyTorch's) can be imported; salm_jax does not depend on
either. The generator writes `generator/<metric>` per round; each victim
writes `victim/<metric>` per epoch into a run folder of its own.
"""
from __future__ import annotations

import json
import os
import re
from typing import Callable

from absl import logging

from salm_jax import atomic


def write_history(path: str, history: list[dict]) -> None:
  atomic.write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))


def read_history(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def _summary_writer_class():
  try:
    from tensorboardX import SummaryWriter  # pytype: disable=import-error
  except ImportError:
    try:
      from torch.utils.tensorboard import SummaryWriter  # pytype: disable=import-error
    except ImportError:
      return None
  return SummaryWriter


class ScalarWriter:
  """A callback `record -> None` writing a record's numbers as scalars at `record[step_key]`."""

  def __init__(self, writer, prefix: str, step_key: str):
    self.writer, self.prefix, self.step_key = writer, prefix, step_key

  def __call__(self, record: dict) -> None:
    for name, value in record.items():
      if name != self.step_key and isinstance(value, (int, float)):
        self.writer.add_scalar(f"{self.prefix}/{name}", value, record[self.step_key])
    self.writer.flush()

  def close(self) -> None:
    self.writer.close()


def scalar_writer(logdir: str, prefix: str, step_key: str) -> ScalarWriter | None:
  """A `ScalarWriter` into `logdir`, or None if no TensorBoard writer is installed."""
  cls = _summary_writer_class()
  if cls is None:
    return None
  logging.info("Writing TensorBoard events to %s", logdir)
  return ScalarWriter(cls(logdir), prefix, step_key)


def tensorboard_writer(logdir: str) -> ScalarWriter | None:
  """The generator's per-round writer (`generator/<metric>` at each round), or None."""
  return scalar_writer(logdir, "generator", "round")


def run_name(text: str) -> str:
  """`text` as a folder name TensorBoard shows as a run (no separators or odd characters)."""
  return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "run"


def chain(*callbacks: Callable[[dict], None] | None) -> Callable[[dict], None] | None:
  """One callback calling each of `callbacks` that is not None (None if all are)."""
  active = [c for c in callbacks if c is not None]
  if not active:
    return None

  def call(record: dict) -> None:
    for c in active:
      c(record)
  return call
