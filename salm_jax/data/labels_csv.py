"""`labels.csv` of an image folder: which file, which class, which split.

A data owner's folder of PNG/JPEG (or DICOM) files comes with a CSV with a
header and the columns `filename,label[,split]` (any order, other columns
kept but unused):

- `filename`: a path relative to the folder (subfolders allowed, nothing
  outside it).
- `label`: one class per image, either integers 0..C-1 in every row, or class
  names in every row (then sorted alphabetically and numbered 0..C-1, so
  'benign','malignant' become 0, 1).
- `split`: `train`, `val` or `test`. Without the column, the rows are split
  70/10/20 by a fixed permutation (`assign_splits`): deterministic, and the
  same for the protected copy, whose CSV keeps the row order.

Every bad row raises a ValueError naming the CSV, the line and the file, so
the owner can fix it without guessing; nothing is read past the first error.
"""
from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from salm_jax.data.dataset import SPLITS

LABELS_FILE = "labels.csv"
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)  # train, val, test when the CSV has no split column
SPLIT_SEED = 0
SPLIT_RULE = (f"no split column: rows permuted by numpy.random.default_rng({SPLIT_SEED}), "
              "first 70% train, next 10% val, rest test")
REQUIRED = ("filename", "label")


@dataclasses.dataclass(frozen=True)
class Row:
  line: int        # line of the CSV (the header is line 1)
  filename: str    # relative to the folder, '/'-separated
  label: str
  split: str | None


def csv_path(folder: str) -> str:
  return os.path.join(folder, LABELS_FILE)


def read_rows(folder: str) -> list[Row]:
  """The checked rows of `<folder>/labels.csv`, in file order."""
  path = csv_path(folder)
  if not os.path.isfile(path):
    raise ValueError(f"{folder}: no {LABELS_FILE}. An image folder needs a {LABELS_FILE} with "
                     "a header and the columns filename,label[,split].")
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel writes a BOM
      table = [(i + 1, r) for i, r in enumerate(csv.reader(f))]
  except (UnicodeDecodeError, csv.Error) as e:
    raise ValueError(f"{path}: cannot read as a UTF-8 CSV: {e}") from e
  table = [(line, r) for line, r in table if any(c.strip() for c in r)]  # blank lines
  if not table:
    raise ValueError(f"{path}: empty; expected a header filename,label[,split].")
  header = [c.strip().lower() for c in table[0][1]]
  missing = [c for c in REQUIRED if c not in header]
  if missing:
    raise ValueError(f"{path}: header {table[0][1]} lacks column(s) {missing}; expected "
                     "filename,label[,split].")
  rows = [_row(path, header, line, cells) for line, cells in table[1:]]
  if not rows:
    raise ValueError(f"{path}: no rows after the header.")
  _check_unique(path, rows)
  return rows


def _row(path: str, header: list[str], line: int, cells: list[str]) -> Row:
  col = header.index("filename")
  name = cells[col].strip() if len(cells) > col else ""
  where = f"{path} row {line}" + (f" ({name})" if name else "")
  if len(cells) != len(header):
    raise ValueError(f"{where}: {len(cells)} fields, but the header has {len(header)}: "
                     f"{cells}.")
  if not name:
    raise ValueError(f"{where}: empty filename.")
  norm = os.path.normpath(name.replace("\\", "/"))
  if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
    raise ValueError(f"{where}: the filename must be a path inside the folder.")
  label = cells[header.index("label")].strip()
  if not label:
    raise ValueError(f"{where}: empty label.")
  split = cells[header.index("split")].strip().lower() if "split" in header else None
  if split is not None and split not in SPLITS:
    raise ValueError(f"{where}: split {split!r}; expected one of {SPLITS}.")
  return Row(line=line, filename=norm.replace(os.sep, "/"), label=label, split=split)


def _check_unique(path: str, rows: list[Row]) -> None:
  seen: dict[str, int] = {}
  for r in rows:
    if r.filename in seen:
      raise ValueError(f"{path} row {r.line} ({r.filename}): the file is listed twice "
                       f"(also row {seen[r.filename]}).")
    seen[r.filename] = r.line


def _is_int(text: str) -> bool:
  try:
    int(text)
    return True
  except ValueError:
    return False


def label_indices(folder: str, rows: list[Row]) -> tuple[np.ndarray, dict[str, str]]:
  """(labels int64 (N, 1), label_names): integers as given, or class names numbered."""
  path = csv_path(folder)
  ints = [_is_int(r.label) for r in rows]
  if all(ints):
    labels = np.array([int(r.label) for r in rows], dtype=np.int64)
    bad = int(np.argmax(labels < 0))
    if labels[bad] < 0:
      raise ValueError(f"{path} row {rows[bad].line} ({rows[bad].filename}): label "
                       f"{labels[bad]} is negative; integer labels are 0..C-1.")
    n = max(int(labels.max()) + 1, 2)
    return labels[:, None], {str(i): str(i) for i in range(n)}
  if any(ints):
    odd = rows[ints.index(not ints[0])]
    raise ValueError(f"{path} row {odd.line} ({odd.filename}): label {odd.label!r} mixes "
                     f"integer and named labels (row {rows[0].line} has {rows[0].label!r}); "
                     "use integers 0..C-1 or class names in every row.")
  names = sorted({r.label for r in rows})
  index = {name: i for i, name in enumerate(names)}
  labels = np.array([index[r.label] for r in rows], dtype=np.int64)
  return labels[:, None], {str(i): name for i, name in enumerate(names)}


def assign_splits(folder: str, rows: list[Row]) -> tuple[list[str], str]:
  """(split of each row, the rule used): the CSV's column, else a fixed 70/10/20 permutation."""
  path = csv_path(folder)
  if rows[0].split is not None:
    splits = [r.split for r in rows]
    empty = [s for s in SPLITS if s not in splits]
    if empty:
      raise ValueError(f"{path}: no rows in split(s) {empty}; train, val and test each need "
                       "at least one image.")
    return splits, "split column"
  n = len(rows)
  if n < 3:
    raise ValueError(f"{path}: {n} row(s); train, val and test need at least one image each.")
  n_val = max(1, int(round(SPLIT_FRACTIONS[1] * n)))
  n_train = min(max(1, int(round(SPLIT_FRACTIONS[0] * n))), n - n_val - 1)
  order = np.random.default_rng(SPLIT_SEED).permutation(n)
  splits = [""] * n
  for rank, i in enumerate(order):
    splits[i] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
  return splits, SPLIT_RULE


def write_renamed(folder: str, out_path: str, renames: dict[str, str]) -> None:
  """Writes the folder's CSV to `out_path` with filenames replaced per `renames`.

  Only called when a file changed name (a JPEG written as PNG); otherwise the
  CSV is copied byte for byte. Row order, other columns and values are kept.
  """
  with open(csv_path(folder), newline="", encoding="utf-8-sig") as f:
    table = list(csv.reader(f))
  col = [c.strip().lower() for c in table[0]].index("filename")
  with open(out_path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(table[0])
    for cells in table[1:]:
      if len(cells) > col:
        key = os.path.normpath(cells[col].strip().replace("\\", "/")).replace(os.sep, "/")
        cells = list(cells)
        cells[col] = renames.get(key, cells[col])
      writer.writerow(cells)
