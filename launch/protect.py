"""Generate SALM noise and write the protected dataset into --workdir.

  python -m launch.protect --config=configs/salm.py:synthetic --workdir=runs/demo
"""
from launch import common
from salm_jax import protect as protect_lib
from salm_jax import terminal
from salm_jax import workdir as wd


def main(argv):
  del argv
  common.setup()
  manifest = protect_lib.protect(common.CONFIG.value, common.WORKDIR.value,
                                 overwrite=common.OVERWRITE.value, progress=common.PROGRESS.value)
  if manifest:
    print("Protected dataset: " + terminal.display_path(
        wd.path(common.WORKDIR.value, wd.PROTECTED, manifest["files"]["data"]["name"])))


def run():
  common.run(main)


if __name__ == "__main__":
  run()
