"""A calm terminal: logs split between terminal and log file, and one-line user errors."""
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from launch import common, errors
from salm_jax import pipeline, terminal
from salm_jax.noise.salm import masks
from tests.conftest import REPO_ROOT

TINY = f"--config={REPO_ROOT / 'configs' / 'salm.py'}:synthetic,tiny"


@pytest.fixture
def routed(monkeypatch):
  """`terminal.configure`, undone afterwards (the root logger is global)."""
  root = logging.getLogger()
  saved = root.handlers[:], root.level
  monkeypatch.setattr(terminal, "_file_handler", None)

  def configure(verbosity, log_path):
    terminal.configure(verbosity)
    terminal.log_to(str(log_path))

  yield configure
  for h in root.handlers[:]:
    if h not in saved[0]:
      root.removeHandler(h)
      h.close()
  root.handlers[:] = saved[0]
  root.setLevel(saved[1])
  logging.captureWarnings(False)


def test_quiet_terminal_shows_stage_lines_and_warnings_the_file_everything(routed, tmp_path,
                                                                           capsys):
  routed(0, tmp_path / "log.txt")
  log = logging.getLogger("salm_jax.test")
  threads = [threading.Thread(target=lambda i=i: [log.info("victim %d epoch %d", i, e)
                                                  for e in range(50)]) for i in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  terminal.say("protect   3 rounds")
  log.warning("the dataset is tiny")
  err = capsys.readouterr().err.splitlines()
  assert err[0] == f"Log: {tmp_path / 'log.txt'} (every round and epoch; -v 1 shows them here too)"
  assert err[1:] == ["protect   3 rounds", "warning: the dataset is tiny"]
  lines = (tmp_path / "log.txt").read_text().splitlines()
  epochs = [l for l in lines if "] victim " in l]
  assert len(epochs) == 100 and all(l.split("] ")[1].startswith("victim ") for l in epochs)
  assert lines[-2].endswith("] protect   3 rounds") and lines[-1].endswith("the dataset is tiny")


def test_verbosity_1_brings_the_detail_back_to_the_terminal(routed, tmp_path, capsys):
  routed(1, tmp_path / "log.txt")
  logging.getLogger("salm_jax.test").info("round 1/3: accuracy 0.5")
  err = capsys.readouterr().err
  assert "round 1/3: accuracy 0.5" in err and err.count("\n") == 2  # with the Log: line


def test_log_file_waits_for_its_folder_and_appends(routed, tmp_path, capsys):
  workdir = tmp_path / "new"
  routed(0, workdir / "log.txt")
  logging.getLogger("salm_jax.test").info("before the workdir exists")
  assert not workdir.exists()  # a mistyped workdir is not created for a log
  workdir.mkdir()
  logging.getLogger("salm_jax.test").info("after")
  text = (workdir / "log.txt").read_text()
  assert text.index("before the workdir exists") < text.index("after")
  assert capsys.readouterr().err.startswith("Log: ")


def test_bars_only_on_a_terminal():
  assert terminal.bar_disable(True) is None  # tqdm: off when the output is no terminal
  assert terminal.bar_disable(False) is True


def test_paths_are_shown_relative_to_the_current_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert terminal.display_path(str(tmp_path / "runs" / "demo")) == os.path.join("runs", "demo")
  assert terminal.display_path("/elsewhere/x") == "/elsewhere/x"


def _raise(fn, *args):
  try:
    fn(*args)
  except Exception as e:  # pylint: disable=broad-except
    return e
  raise AssertionError("no exception")


def test_only_our_validators_and_path_errors_are_user_errors():
  assert errors.is_user_error(_raise(masks.check_ratio, 0.0))        # our `raise`
  assert errors.is_user_error(FileExistsError("runs/demo holds a finished run"))
  assert not errors.is_user_error(_raise(np.zeros(3).reshape, 2))    # numpy's ValueError
  assert not errors.is_user_error(_raise(pipeline._f, "abc"))        # a bug in our code
  assert not errors.is_user_error(_raise(lambda: {}["k"]))           # not the family


def test_guarded_main_turns_a_user_error_into_one_line_and_keeps_bugs(capsys, monkeypatch):
  monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
  with pytest.raises(SystemExit) as exit_info:
    common._guarded(lambda argv: masks.check_ratio(0.0))([])
  assert exit_info.value.code == errors.USER_ERROR_EXIT
  assert capsys.readouterr().err == "error: mask_ratio must be in (0, 1], got 0.0.\n"
  with pytest.raises(ValueError):  # a bug: the traceback stays
    common._guarded(lambda argv: np.zeros(3).reshape(2))([])
  monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
  with pytest.raises(ValueError, match="mask_ratio"):
    common._guarded(lambda argv: masks.check_ratio(0.0))([])


def _bad_files(tmp_path):
  (tmp_path / "not_npz.npz").write_text("hello")
  np.savez(tmp_path / "wrong_keys.npz", images=np.zeros((2, 28, 28), np.uint8))
  return tmp_path / "not_npz.npz", tmp_path / "wrong_keys.npz"


@pytest.mark.parametrize("args, needle", [
    (["--config.noise.nosuchfield=1"], "--config.noise.nosuchfield: the config has no such field"),
    (["--config.dataset.name=nosuchdata"], "Unknown MedMNIST dataset 'nosuchdata'"),
    (["--config.dataset.name={not_npz}"], "cannot read as a MedMNIST npz"),
    (["--config.dataset.name={wrong_keys}"], "missing keys"),
    (["--config.noise.mask_ratio=0"], "mask_ratio must be in (0, 1]"),
    (["--nosuchflag"], "Unknown command line flag 'nosuchflag'"),
])
def test_a_users_mistake_is_one_line_and_exit_2(tmp_path, args, needle):
  not_npz, wrong_keys = _bad_files(tmp_path)
  args = [a.format(not_npz=not_npz, wrong_keys=wrong_keys) for a in args]
  proc = _protect(tmp_path / "run", *args)
  lines = proc.stderr.splitlines()
  assert proc.returncode == errors.USER_ERROR_EXIT, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert [l for l in lines if not l.startswith("Log: ")] == [lines[-1]]
  assert lines[-1].startswith("error: ") and needle in lines[-1]
  if "mask_ratio" in needle:  # a bad setting is refused before the stage writes anything
    assert not (tmp_path / "run" / "config.json").exists()


def test_the_traceback_is_there_when_asked_for_and_in_the_log(tmp_path):
  (tmp_path / "protected").mkdir()
  (tmp_path / "protected" / "manifest.json").write_text("{}")  # a finished run
  proc = _protect(tmp_path, env={errors.TRACEBACK_ENV: "1"})
  assert proc.returncode == 1 and "Traceback" in proc.stderr
  assert "FileExistsError" in proc.stderr and "--overwrite" in proc.stderr
  log = (tmp_path / "log.txt").read_text()
  assert "Traceback" in log and "workdir.py" in log  # the log keeps it either way


def _protect(workdir, *args, env=None):
  cmd = [sys.executable, "-m", "launch.protect", TINY, f"--workdir={workdir}", *args]
  env = {k: v for k, v in os.environ.items() if k != errors.TRACEBACK_ENV} | (env or {})
  return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                        env=env)
