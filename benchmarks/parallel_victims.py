"""Two victims one after the other vs side by side in threads (`evaluation.parallel_victims`).

Trains the README job's victim (small CNN, 15 epochs, batch 32, on the
synthetic config's phantom) once to compile, then two seeds sequentially and
two seeds in two threads, and prints both wall times and the test metrics
(which must be identical).

  PYTHONPATH=. python benchmarks/parallel_victims.py
"""
from __future__ import annotations

import concurrent.futures
import time

from absl import app
import jax

from configs import salm
from salm_jax.data import load_from_config
from salm_jax.evaluation import victim


def main(argv):
  del argv
  config = salm.get_config("synthetic")
  ds = load_from_config(config.dataset)

  def train(seed):
    return victim.train_victim(ds.train, ds.val, ds.test, task=ds.task,
                               num_classes=ds.num_classes, arch=config.evaluation.archs[0],
                               cfg=config.evaluation, key=jax.random.key(seed))["last"]

  train(0)  # compile
  t0 = time.perf_counter()
  sequential = [train(s) for s in (1, 2)]
  t_seq = time.perf_counter() - t0
  t0 = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    threaded = list(pool.map(train, (1, 2)))
  t_par = time.perf_counter() - t0
  print(f"devices={jax.devices()}")
  print(f"two victims one after the other: {t_seq:.1f} s")
  print(f"two victims in two threads:      {t_par:.1f} s  ({t_seq / t_par:.2f}x)")
  print(f"identical test metrics: {sequential == threaded}  {threaded}")


if __name__ == "__main__":
  app.run(main)
