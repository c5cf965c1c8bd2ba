"""A method's own config block, `config.noise.<name>`, over its defaults.

Model-free methods keep their fields in a block of their own; a block that
leaves a field out takes its default, and a misspelt field is an error that
names the block's fields.
"""
from __future__ import annotations

import ml_collections

from salm_jax import tasks


def method_block(noise: ml_collections.ConfigDict, name: str,
                 defaults: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`noise.<name>` over `defaults`; raises ValueError on a field the defaults lack."""
  block = defaults.to_dict()
  given = noise.get(name, None)
  if given is not None:
    given = given.to_dict() if hasattr(given, "to_dict") else dict(given)
    unknown = sorted(set(given) - set(block))
    if unknown:
      raise ValueError(f"noise.{name} has no field {', '.join(unknown)}; its fields are "
                       f"{tuple(block)}.")
    block.update(given)
  return ml_collections.ConfigDict(block)


def class_wise_seed(config: ml_collections.ConfigDict, task: str, what: str) -> int:
  """`config.seed` for a class-wise model-free method `what`; refuses multi-label data."""
  if tasks.is_multilabel(task):
    raise ValueError(f"{what} is class-wise: it needs one class per image, and the multi-label "
                     "task has none.")
  seed = int(config.seed)
  if seed < 0:
    raise ValueError(f"{what} needs a non-negative seed, got {seed}.")
  return seed
