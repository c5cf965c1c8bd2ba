"""Which victim a `benchmarks/frontier.py` row is: shared by the sweep and its report.

A row names its architecture, and the victim's options sit beside it. Most
options only resize a model, but a ViT's patch decides what a lattice
texture looks like to it: the dots are the same offset in every patch only
when their period divides the patch (docs/RESULTS.md). So a
ViT with its patch set is a victim of its own, in the sweep's resume keys
and in the report's columns ('vit_small/patch7').
"""
from __future__ import annotations


def victim_name(arch: str, model_kwargs: dict | None) -> str:
  """`arch`, with '/patch<P>' when its options set a ViT patch."""
  patch = (model_kwargs or {}).get("patch_size")
  return arch + (f"/patch{patch}" if patch else "")


def row_victim(row: dict) -> str:
  """`victim_name` of a written row."""
  return victim_name(row["arch"], (row.get("victim") or {}).get("model_kwargs"))


def row_key(row: dict) -> tuple:
  """(variant, seed, victim, defense): one row per key; a later one replaces an earlier."""
  return (row["variant"], row["seed"], row_victim(row), row.get("defense", "none"))
