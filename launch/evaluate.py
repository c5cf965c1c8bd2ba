"""Train victims on the clean and the protected data of --workdir; write the tables.

  python -m launch.evaluate --config=configs/salm.py:synthetic --workdir=runs/demo
"""
from absl import app

from launch import common
from salm_jax import evaluation
from salm_jax import workdir as wd


def main(argv):
  del argv
  common.setup()
  config, workdir = common.CONFIG.value, common.WORKDIR.value
  wd.require(workdir, wd.DONE_PROTECT, "run launch.protect on this workdir first")
  wd.start_stage(workdir, config, done_file=wd.DONE_EVALUATE, outputs=(wd.EVALUATION,),
                 overwrite=common.OVERWRITE.value,
                 config_file=f"{wd.EVALUATION}/config.json")
  evaluation.run_evaluation(config, workdir, progress=common.PROGRESS.value)
  print(f"Evaluation tables: {wd.path(workdir, wd.EVALUATION, 'results.md')}")


def run():
  app.run(main)


if __name__ == "__main__":
  run()
