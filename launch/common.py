"""What every entry point shares: its flags, how it starts, and how it fails.

Flags: --config (ml_collections), --workdir, --overwrite, --progress, and
absl's --verbosity (-v). `run(main)` parses them and calls `main`; a user's
mistake (see `launch.errors`) ends in one line on stderr and exit status 2,
a bug in a traceback. `setup()` sends the detail to `<workdir>/log.txt` and
keeps the terminal to a few lines (see `salm_jax.terminal`).

The default config is found next to the installed `configs` package, so the
console scripts (`salm-protect`, ...) work from any folder, not only the repo root.
"""
import os
import re
import sys

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

import configs
from launch import distributed
from launch import errors
from salm_jax import compile_cache
from salm_jax import terminal
from salm_jax import workdir as wd

DEFAULT_CONFIG = os.path.join(os.path.dirname(configs.__file__), "salm.py") + ":synthetic"

# No default here: a default is parsed, with the --config.* overrides, when the
# module is imported, where a bad override could only end in a traceback.
# `parse_flags` puts the default on the command line instead.
CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file and argument, e.g. configs/salm.py:breastmnist (default: "
    "configs/salm.py:synthetic). Override fields with --config.noise.mask_ratio=0.2.",
    lock_config=True)
WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Folder of the experiment's outputs.")
OVERWRITE = flags.DEFINE_bool("overwrite", False,
                              "Replace a finished stage's outputs instead of refusing.")
PROGRESS = flags.DEFINE_bool("progress", True,
                             "Show progress bars (only drawn when stderr is a terminal).")

_CONFIG_GIVEN = re.compile(r"^--?config(=|$)")
_OVERRIDE = re.compile(r"^--?(no)?config\.")


def run(main) -> None:
  """Runs `main(argv)` as an absl app, with one-line errors for a user's mistakes."""
  app.run(_guarded(main), flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with the default --config and one-line errors."""
  if not any(_CONFIG_GIVEN.match(a) for a in argv[1:]):
    argv = [argv[0], f"--config={DEFAULT_CONFIG}", *argv[1:]]
  sys.argv = argv  # ml_collections reads the --config.* overrides from sys.argv
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    errors.exit_with(_flag_error(e))
  except (AttributeError, KeyError) as e:  # ml_collections: an override names no field
    overrides = [a.split("=", 1)[0] for a in argv if _OVERRIDE.match(a)]
    if not overrides or errors.wants_traceback():
      raise
    errors.exit_with(_unknown_field(overrides, e))
  except Exception as e:  # pylint: disable=broad-except
    if not errors.is_user_error(e) or errors.wants_traceback():
      raise
    errors.exit_with(errors.one_line(e))
  try:
    CONFIG.value.get("seed")  # ml_collections defers a config file's load error to first use
  except OSError as e:
    if errors.wants_traceback():
      raise
    errors.exit_with(f"error: --config: cannot load the config file: {_last_line(e)}")
  return rest


def _last_line(exc: BaseException) -> str:
  return str(exc).strip().splitlines()[-1].strip()


def _flag_error(exc: BaseException) -> str:
  """A flag error as one line. ml_collections puts the traceback of a ValueError or
  TypeError from the config file into the message: our validator's keeps its last line
  only; anything else (a bug in a config file) keeps the traceback."""
  text = str(exc)
  if "Error whilst parsing config file" not in text:
    return f"error: {' '.join(text.split())} (--helpfull lists the flags)"
  frames = re.findall(r'File "([^"]+)", line (\d+)', text)
  if frames and not errors.wants_traceback():
    path, line = os.path.abspath(frames[-1][0]), int(frames[-1][1])
    if errors.is_our_raise(path, line):
      return f"error: --config: {_last_line(exc).split(': ', 1)[-1]}"
  return f"error: {text}"


def _unknown_field(overrides: list[str], exc: BaseException) -> str:
  """One line naming the override whose field the config lacks (ml_collections quotes it)."""
  text = str(exc).replace('\\"', '"').replace("\\'", "'")
  guilty = [o for o in overrides if any(f"'{part}'" in text for part in o.split(".")[1:])]
  message = f"error: {', '.join(guilty or overrides)}: the config has no such field"
  did_you_mean = re.search(r"Did you mean [^?]*\?", text)
  if did_you_mean:
    message += f". {did_you_mean.group(0)}"
  return message + " (the config file lists the fields)"


def _guarded(main):
  """`main`, with a user error turned into one line and every failure kept in the log."""
  def wrapped(argv):
    try:
      return main(argv)
    except KeyboardInterrupt:
      terminal.log_traceback("Interrupted.")
      errors.exit_with("interrupted: run the same command again to resume "
                       "(protect goes on from its last checkpoint)", status=130)
    except Exception as e:  # pylint: disable=broad-except
      terminal.log_traceback("Failed:")
      if not errors.is_user_error(e) or errors.wants_traceback(logging.get_verbosity()):
        raise
      errors.exit_with(errors.one_line(e))
  return wrapped


def setup() -> None:
  """Joins a multi-host run if there is one, routes the logs, caches compiled programs.

  `jax.distributed` must start before anything touches a device. The
  persistent compilation cache makes every run after the first start in
  seconds instead of compiling again (set JAX_COMPILATION_CACHE_DIR to move it).
  """
  distributed.maybe_initialize()
  terminal.configure(logging.get_verbosity())  # before JAX's backends log their start
  compile_cache.enable()
  index = jax.process_index()
  terminal.log_to(wd.path(WORKDIR.value, wd.LOG if index == 0 else f"log.process{index}.txt"))
  logging.info("Command: %s", " ".join(sys.argv))
  logging.info("JAX %s, %d %s device(s), process %d of %d.", jax.__version__,
               jax.device_count(), jax.default_backend(), index, jax.process_count())
