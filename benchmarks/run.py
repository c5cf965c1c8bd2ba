"""The benchmark suite in one command: prints every table and writes each result as JSON.

  python -m benchmarks.run                                  # short sizes: a few minutes
  python -m benchmarks.run --size=full                      # docs/benchmarks.md's sizes
  python -m benchmarks.run --only=pgd --results_dir=/tmp/b  # one part, elsewhere
  python -m benchmarks.run --quick                          # smallest sizes (the smoke test)

Every part times the noise the tool ships (`configs/salm.py`: class-wise
SALM, masks re-chosen at every PGD step, δ cut to its top-k pixels after
each round) against the same computation written the usual PyTorch way:

  pgd       (`bench_pgd`) one PGD round as the generator compiles it vs
            `torch_pgd.py`, in images x steps per second, per surrogate;
  generate  (`bench_generate`) protecting BreastMNIST end to end with the
            default's settings, `generate` vs `torch_minmin.py`: wall time,
            rounds, peak RSS, the surrogate's final accuracy on x + δ;
  scale     (`bench_scale`) round time and peak memory against N images;
  levers    (`bench_levers`, not in the default set) what each XLA:CPU knob
            changes in that round.

Sizes (`SIZES`): 'short' (the default) runs fewer cases, PGD steps, rounds
and images, a few minutes on 2 cores; its figures are per image·step, per
round and per image, so they compare with the full run's. 'full' is each
part's own CLI defaults, the sizes docs/benchmarks.md reports. 'quick' runs
every code path at toy sizes, for the tests. Each part takes more options
on its own CLI (`python -m benchmarks.bench_pgd --help`, ...). PyTorch
contenders are skipped when torch is not installed (`pip install -e
'.[bench]'`). Results go to `benchmarks/results/cpu_<date>/<part>.json` with
the machine's description and load averages; on a shared machine each part
interleaves its contenders and prints the load with every table.
"""
from __future__ import annotations

import argparse
import os
import time

from benchmarks import bench_generate, bench_levers, bench_pgd, bench_scale, machine

PARTS = {"pgd": bench_pgd, "generate": bench_generate, "scale": bench_scale,
         "levers": bench_levers}
DEFAULT_PARTS = ("pgd", "generate", "scale")
DATA_PARTS = ("generate", "scale")


SIZES = {
    # The smallest sizes that still run every code path (tests/test_perf_suite.py).
    "quick": {"cases": "small_cnn:4:1", "case": "small_cnn:4:1", "variants": "default,unroll=1",
              "batch": 8, "steps": 2, "repeats": 1, "num_images": 64, "max_rounds": 1,
              "min_rounds": 1, "sizes": "32,64", "surrogate": "small_cnn:4",
              "impls": "jax,torch"},
    # A few minutes on 2 cores: gray images only, 5 PGD steps a round (the
    # width-64 round dominates the part's time), 3 generator rounds, N up to 2000.
    "short": {"cases": "resnet18:64:1,resnet18:16:1,small_cnn:16:1", "steps": 5,
              "max_rounds": 3, "min_rounds": 3, "sizes": "500,1000,2000"},
    "full": {},
}


def part_args(module, data_dir: str, size: str) -> argparse.Namespace:
  """The part's own defaults (its `python -m benchmarks.<part>` CLI), the data folder, `SIZES`."""
  parser = argparse.ArgumentParser()
  module.add_arguments(parser)
  args = parser.parse_args([])
  if hasattr(args, "data_dir"):
    args.data_dir = data_dir
  for key, value in SIZES[size].items():
    if hasattr(args, key):
      setattr(args, key, value)
  return args


def parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default=",".join(DEFAULT_PARTS),
                      help=f"comma list of parts: {', '.join(PARTS)}")
  parser.add_argument("--results_dir", default=machine.default_results_dir())
  parser.add_argument("--size", default="short", choices=tuple(SIZES),
                      help="short: a few minutes; full: the documented sizes; quick: toy")
  parser.add_argument("--quick", action="store_true", help="the same as --size=quick")
  parser.add_argument("--data_dir", default=bench_generate.DEFAULT_DATA_DIR,
                      help="folder of breastmnist.npz and pneumoniamnist.npz")
  return parser.parse_args()


def main() -> None:
  args = parse()
  size = "quick" if args.quick else args.size
  print(f"machine: {machine.describe()}", flush=True)
  for name in args.only.split(","):
    if name not in PARTS:
      raise SystemExit(f"Unknown part {name!r}; parts: {', '.join(PARTS)}.")
    if name in DATA_PARTS and not os.path.isdir(args.data_dir):
      print(f"\n== {name}: skipped, no data folder {args.data_dir} (pass --data_dir)")
      continue
    print(f"\n== {name} (load {machine.load()})", flush=True)
    start = time.perf_counter()
    part = part_args(PARTS[name], args.data_dir, size)
    if name == "generate" and not bench_pgd.has_torch():
      part.impls = ",".join(i for i in part.impls.split(",") if not i.startswith("torch"))
    result = PARTS[name].run(part)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["size"] = size
    print(f"-> {machine.write(args.results_dir, name, result)} ({result['seconds']:.0f} s)",
          flush=True)


if __name__ == "__main__":
  main()
