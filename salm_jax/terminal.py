"""What a person sees while a stage runs, and the log file that keeps the rest.

A long run logs a line per generator round and per victim epoch; two
victims train at once in threads. Printed as they come, those lines and the
progress bars interleave into noise. So the entry points (`configure`) split
the logging in two:

- the terminal shows warnings, errors and the few lines a stage marks with
  `say` (one per finished stage), printed above the live progress bars
  through `tqdm.write`, so bars and lines never share a row;
- `<workdir>/log.txt` receives every INFO line, always, whatever the
  terminal shows: a run of hours keeps its record.

`--verbosity=1` (`-v 1`) prints the INFO lines on the terminal as well;
`-v 2` adds DEBUG, in the terminal and the file. Progress bars are drawn only
when stderr is a terminal (tqdm's `disable=None`), so a redirected run
writes plain lines, not carriage-return frames.
"""
from __future__ import annotations

import logging
import os
import sys

from absl import logging as absl_logging
import tqdm

_SAY = "salm_say"          # LogRecord attribute: show this INFO line on a quiet terminal
_FILE_ONLY = "salm_file_only"  # LogRecord attribute: keep it out of the terminal

_logger = logging.getLogger("salm_jax")


def say(msg: str, *args) -> None:
  """Logs an INFO line that a quiet terminal shows too (a stage's one-line outcome)."""
  _logger.info(msg, *args, extra={_SAY: True}, stacklevel=2)


def log_traceback(msg: str) -> None:
  """Logs `msg` and the exception being handled to the log file only (the terminal has
  its one-line report). Does nothing before `configure`: absl's handler would print it."""
  if _file_handler is not None:
    _logger.error(msg, exc_info=True, extra={_FILE_ONLY: True}, stacklevel=2)


def display_path(path: str) -> str:
  """`path` relative to the current folder when it lies inside it (as a person typed it)."""
  rel = os.path.relpath(os.path.abspath(path))
  return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def bar_disable(progress: bool) -> bool | None:
  """tqdm's `disable`: None draws bars only when the output is a terminal."""
  return None if progress else True


class _TerminalHandler(logging.Handler):
  """Prints records through `tqdm.write`, which lifts the live bars out of the way."""

  def __init__(self, verbosity: int):
    super().__init__()
    self.verbose = verbosity >= 1
    self.detail = absl_logging.PythonFormatter()

  def filter(self, record: logging.LogRecord) -> bool:
    if getattr(record, _FILE_ONLY, False):
      return False
    return self.verbose or record.levelno >= logging.WARNING or getattr(record, _SAY, False)

  def format(self, record: logging.LogRecord) -> str:
    if getattr(record, _SAY, False):
      return record.getMessage()
    if self.verbose:
      return self.detail.format(record)
    return f"{record.levelname.lower()}: {record.getMessage()}"

  def emit(self, record: logging.LogRecord) -> None:
    try:
      tqdm.tqdm.write(self.format(record), file=sys.stderr)
    except Exception:  # pylint: disable=broad-except
      self.handleError(record)


class _LogFileHandler(logging.Handler):
  """Appends to the log file once it is named and its folder exists; holds records until then.

  The entry points start logging before they know the process index (which
  names the file) and before a stage has created its workdir; a mistyped
  workdir should not be created just to hold a log. The terminal is told
  where the log is once the file is opened.
  """

  def __init__(self, level: int):
    super().__init__(level)
    self.path: str | None = None
    self.pending: list[str] = []
    self.stream = None
    self.setFormatter(absl_logging.PythonFormatter())

  def emit(self, record: logging.LogRecord) -> None:
    try:
      text = self.format(record) + "\n"
      if self.stream is None and not self._open():
        self.pending.append(text)
        return
      self.stream.write(text)
      self.stream.flush()
    except Exception:  # pylint: disable=broad-except
      self.handleError(record)

  def _open(self) -> bool:
    if self.path is None or not os.path.isdir(os.path.dirname(self.path)):
      return False
    self.stream = open(self.path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
    self.stream.write("".join(self.pending))
    self.pending = []
    tqdm.tqdm.write(f"Log: {display_path(self.path)} (every round and epoch; -v 1 shows them here too)",
                    file=sys.stderr)
    return True

  def close(self) -> None:
    with self.lock:
      if self.stream is not None:
        self.stream.close()
        self.stream = None
    super().close()


_file_handler: _LogFileHandler | None = None


def configure(verbosity: int) -> list[logging.Handler]:
  """Routes all logging to a quiet (or, verbosity >= 1, full) terminal and a log file.

  Replaces absl's (and any other plain stream) handler on the root logger. The file is named
  later, by `log_to`; until then its lines are held. Returns the two new
  handlers (tests remove them again).
  """
  global _file_handler
  root = logging.getLogger()
  for h in list(root.handlers):  # absl's, and any basicConfig stream handler
    if h is absl_logging.get_absl_handler() or type(h) is logging.StreamHandler:
      root.removeHandler(h)
  level = logging.DEBUG if verbosity >= 2 else logging.INFO
  _file_handler = _LogFileHandler(level)
  handlers = [_TerminalHandler(verbosity), _file_handler]
  for h in handlers:
    root.addHandler(h)
  root.setLevel(level)
  logging.getLogger("absl").setLevel(logging.NOTSET)  # absl's lines follow the root's level
  logging.captureWarnings(True)  # Python warnings too: above the bars, and into the file
  return handlers


def log_to(path: str) -> None:
  """Names the log file (appended to, never truncated: it keeps every run on the workdir)."""
  with _file_handler.lock:
    _file_handler.path = os.path.abspath(path)
    if _file_handler.pending:
      _file_handler._open()  # pylint: disable=protected-access


class RoundsBar:
  """The protect stage's live line: rounds done, and the surrogate's accuracy on x + δ.

  Called with each round's record (the generator's `on_round`); the
  generator's own per-round bar over the images opens below it.
  """

  def __init__(self, total: int, progress: bool, desc: str = "protect"):
    self.bar = tqdm.tqdm(total=total, desc=desc, unit="round", leave=False,
                         disable=bar_disable(progress))

  def __call__(self, record: dict) -> None:
    self.bar.update(record["round"] - self.bar.n)  # a resumed run starts past 0
    self.bar.set_postfix_str(f"surrogate accuracy on x+δ {record['accuracy']:.3f}")

  def close(self) -> None:
    self.bar.close()
