"""Where each entry point reads and writes inside a workdir.

One workdir holds one experiment: `protect` fills `protected/` and
`checkpoints/`, `evaluate` fills `evaluation/`, `sweep` fills `sweep/`,
`report` fills `report/`. Each later step reads what the earlier ones wrote,
so these paths are the contract between them.
"""
from __future__ import annotations

import os

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
  return os.path.join(os.path.expanduser(workdir), *parts)
