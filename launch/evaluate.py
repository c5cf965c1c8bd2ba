"""Train victims on the clean and the protected data of --workdir; write the tables.

  python -m launch.evaluate --config=configs/salm.py:synthetic --workdir=runs/demo
"""
from launch import common
from salm_jax import pipeline
from salm_jax import terminal
from salm_jax import workdir as wd


def main(argv):
  del argv
  common.setup()
  pipeline.evaluate_stage(common.CONFIG.value, common.WORKDIR.value,
                          overwrite=common.OVERWRITE.value, progress=common.PROGRESS.value)
  print("Evaluation tables: "
        + terminal.display_path(wd.path(common.WORKDIR.value, wd.EVALUATION, "results.md")))


def run():
  common.run(main)


if __name__ == "__main__":
  run()
