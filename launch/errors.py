"""Which failures are a user's mistake (one line, exit 2) and which are bugs (traceback).

A mistyped flag, a config value out of range, a file that is not a MedMNIST
npz, a finished workdir without --overwrite: the person needs the sentence
our validator wrote, not forty lines of stack. A bug needs the stack. The
line between them is drawn narrowly, so that no bug is hidden:

- a path error (FileExistsError, FileNotFoundError, NotADirectoryError,
  IsADirectoryError, PermissionError): almost always a workdir, data file or
  config file the person named, and its message names the path;
- a ValueError or TypeError raised by a `raise` statement in our own code
  (salm_jax/, launch/, configs/): our validators. The same types raised
  inside numpy, JAX or Python itself (a shape mismatch, a wrong call) are bugs.

The traceback of a user error still goes to the workdir's log file, and to
the terminal with SALM_TRACEBACK=1 or --verbosity=1.
"""
from __future__ import annotations

import linecache
import os
import sys

import configs
import launch
import salm_jax

USER_ERROR_EXIT = 2
PATH_ERRORS = (FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError)
VALIDATION_ERRORS = (ValueError, TypeError)
TRACEBACK_ENV = "SALM_TRACEBACK"
_OUR_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                  for m in (salm_jax, launch, configs))


def is_user_error(exc: BaseException) -> bool:
  if isinstance(exc, PATH_ERRORS):
    return True
  return isinstance(exc, VALIDATION_ERRORS) and raised_by_our_validator(exc)


def raised_by_our_validator(exc: BaseException) -> bool:
  """True if the innermost frame is our code and its line is a `raise` statement."""
  tb = exc.__traceback__
  if tb is None:
    return False
  while tb.tb_next is not None:
    tb = tb.tb_next
  return is_our_raise(tb.tb_frame.f_code.co_filename, tb.tb_lineno)


def is_our_raise(filename: str, lineno: int) -> bool:
  """True if line `lineno` of `filename` is a `raise` statement in our code."""
  filename = os.path.abspath(filename)
  if not filename.startswith(_OUR_DIRS):
    return False
  return linecache.getline(filename, lineno).lstrip().startswith("raise")


def wants_traceback(verbosity: int = 0) -> bool:
  return verbosity >= 1 or os.environ.get(TRACEBACK_ENV, "").lower() not in ("", "0", "false")


def one_line(exc: BaseException) -> str:
  """The error as one line: its message, newlines folded, the type only if there is none."""
  message = " ".join(str(exc).split())
  return f"error: {message or type(exc).__name__}"


def exit_with(message: str, status: int = USER_ERROR_EXIT) -> None:
  """Prints `message` on stderr and exits with `status` (default: the user-error status)."""
  sys.stderr.write(message + "\n")
  sys.stderr.flush()
  raise SystemExit(status)
