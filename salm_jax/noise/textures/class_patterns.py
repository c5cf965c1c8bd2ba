"""Checks shared by the model-free class-wise patterns (`flat_support`, `lattice`).

Both give every image of a class the same pattern, so both need one class
per image, two classes for an antipodal pair, and an ε that survives uint8
rounding; the error names the method's own config block.
"""
from __future__ import annotations

from salm_jax import tasks
from salm_jax.data import protected as protected_lib


def check(block: str, pattern: str, epsilon: float, task: str | None,
          num_classes: int | None, instead: str) -> None:
  """Raises ValueError naming `noise.<block>` when a class-wise pattern cannot be made.

  `instead` is what to use when 'antipodal' meets more than two classes.
  """
  if task is not None and tasks.is_multilabel(task):
    raise ValueError("Class-wise patterns need one class per image; the multi-label task has "
                     "none.")
  if pattern == "antipodal" and num_classes not in (None, 2):
    raise ValueError(f"noise.{block}.pattern='antipodal' needs two classes, the task has "
                     f"{num_classes}; use {instead}.")
  if protected_lib.linf_bound(epsilon) < 1:
    raise ValueError(f"noise.epsilon = {epsilon} rounds to 0 uint8 levels.")
