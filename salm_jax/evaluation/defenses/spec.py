"""Parsing defense specs such as 'hflip+crop_pad' or 'jpeg:quality=30'.

A spec is what a config (and the CLI) holds: one string per defense setting,
so a list of them reads as the rows of the results table. Grammar:

  spec  := 'none' | part ('+' part)*
  part  := name [':' key '=' value (',' key '=' value)*]
  value := a number, or a fraction such as 8/255

Parsing knows nothing of what the names mean; the registry in
`salm_jax.evaluation.defenses` checks names and parameters against what each defense takes.
"""
from __future__ import annotations

import dataclasses
import re

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class Part:
  """One defense of a spec with its parameters as written (numbers)."""
  name: str
  params: tuple[tuple[str, float], ...] = ()

  def kwargs(self) -> dict[str, float]:
    return dict(self.params)


def parse_value(text: str, where: str) -> float:
  """'30' -> 30.0, '0.5' -> 0.5, '8/255' -> 8/255; anything else is an error."""
  try:
    if "/" in text:
      num, den = text.split("/")
      return float(num) / float(den)
    return float(text)
  except (ValueError, ZeroDivisionError):
    raise ValueError(f"Defense spec {where!r}: value {text!r} is not a number "
                     "(write e.g. 30, 0.5 or 8/255).") from None


def parse_part(text: str) -> Part:
  text = text.strip()
  name, colon, rest = text.partition(":")
  name = name.strip()
  if not _NAME.match(name):
    raise ValueError(f"Defense spec part {text!r}: {name!r} is not a defense name.")
  params = {}
  for item in filter(None, (s.strip() for s in rest.split(","))) if rest else ():
    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq or not _NAME.match(key):
      raise ValueError(f"Defense spec part {text!r}: parameter {item!r} is not key=value.")
    if key in params:
      raise ValueError(f"Defense spec part {text!r}: parameter {key!r} given twice.")
    params[key] = parse_value(value.strip(), text)
  if colon and not params:
    raise ValueError(f"Defense spec part {text!r}: ':' must be followed by key=value.")
  return Part(name, tuple(params.items()))


def parse(spec: str) -> tuple[Part, ...]:
  """A spec string -> its parts in order; 'none' (or '') -> ()."""
  if not isinstance(spec, str):
    raise ValueError(f"A defense spec must be a string such as 'hflip+crop_pad'; got {spec!r}.")
  if spec.strip() in ("", "none"):
    return ()
  parts = tuple(parse_part(p) for p in spec.split("+"))
  if any(p.name == "none" for p in parts):
    raise ValueError(f"Defense spec {spec!r}: 'none' cannot be combined with other defenses.")
  return parts
