"""A grid over one config field (default: the mask ratio), aggregated into one table and plot.

  python -m launch.sweep --config=configs/salm.py:synthetic --workdir=runs/ratio \
      --config.sweep.grid='(0.05, 0.1, 0.5, 1.0)'
"""
from launch import common
from salm_jax import sweep
from salm_jax import terminal
from salm_jax import workdir as wd


def main(argv):
  del argv
  common.setup()
  sweep.run_sweep(common.CONFIG.value, common.WORKDIR.value, overwrite=common.OVERWRITE.value,
                  progress=common.PROGRESS.value)
  print("Sweep table: "
        + terminal.display_path(wd.path(common.WORKDIR.value, wd.SWEEP, "table.md")))


def run():
  common.run(main)


if __name__ == "__main__":
  run()
