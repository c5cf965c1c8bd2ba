"""The main job: protect a dataset, evaluate the protection, write the report.

  python -m launch.run --workdir=runs/demo        # built-in phantom data, ~1 min on 2 CPU cores
  python -m launch.run --config=configs/salm.py:breastmnist --workdir=runs/breast
"""
from launch import common
from salm_jax import pipeline


def main(argv):
  del argv
  common.setup()
  summary = pipeline.run_all(common.CONFIG.value, common.WORKDIR.value,
                             overwrite=common.OVERWRITE.value, progress=common.PROGRESS.value)
  print(pipeline.summary_text(summary))


def run():
  common.run(main)


if __name__ == "__main__":
  run()
