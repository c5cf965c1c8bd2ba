"""Turn --workdir into a Markdown + HTML report with figures (report/index.html).

  python -m launch.report --config=configs/salm.py:synthetic --workdir=runs/demo

The report is drawn from what the workdir holds (protected/, metrics.jsonl,
preview.npz, evaluation/, sweep/); --config is accepted so every entry point
takes the same flags, but the report shows the config saved with the run.
"""
from launch import common
from salm_jax import report
from salm_jax import terminal


def main(argv):
  del argv
  common.setup()
  print(f"Report: {terminal.display_path(report.build_report(common.WORKDIR.value))}")


def run():
  common.run(main)


if __name__ == "__main__":
  run()
