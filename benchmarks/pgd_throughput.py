"""Throughput of one masked PGD round (images × steps per second), rolled vs unrolled loop.

XLA:CPU runs a while-loop body's convolutions much slower than the same ops
unrolled; `salm_jax.noise.pgd.default_unroll` therefore unrolls on CPU. This script
measures both, plus the bare input gradient, so the choice can be rechecked
on any machine:

  PYTHONPATH=. python benchmarks/pgd_throughput.py --model=small_cnn --width=16
  PYTHONPATH=. python benchmarks/pgd_throughput.py --model=resnet18 --width=16 --batch=64
"""
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx

from salm_jax import tasks
from salm_jax.models import create_model
from salm_jax.noise import pgd, saliency

MODEL = flags.DEFINE_string("model", "small_cnn", "Surrogate model name.")
WIDTH = flags.DEFINE_integer("width", 16, "Model width.")
BATCH = flags.DEFINE_integer("batch", 256, "Images per batch.")
SIZE = flags.DEFINE_integer("size", 28, "Image side.")
STEPS = flags.DEFINE_integer("steps", 10, "PGD steps per round.")
REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats (after one warm-up).")
RATIO = flags.DEFINE_float("ratio", 0.1, "Mask ratio.")


def _time(fn, *args) -> float:
  jax.block_until_ready(fn(*args))  # compile + warm-up
  start = time.perf_counter()
  for _ in range(REPEATS.value):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - start) / REPEATS.value


def main(argv):
  del argv
  model = create_model(MODEL.value, num_classes=2, in_channels=1, image_size=SIZE.value,
                       rngs=nnx.Rngs(0), width=WIDTH.value)
  model.eval()
  graphdef, state = nnx.split(model)
  logits = lambda s, x: nnx.merge(graphdef, s, copy=True)(x)
  b, n = BATCH.value, STEPS.value
  x = jax.random.uniform(jax.random.key(0), (b, SIZE.value, SIZE.value, 1))
  y = jnp.zeros((b, 1), jnp.int32)
  d = jnp.zeros_like(x)
  grad = jax.jit(lambda s, x, d: saliency.input_gradient(lambda z: logits(s, z), x, y, d)[1])
  rows = [("input gradient (1 step)", _time(grad, state, x, d), 1)]
  for unroll, name in ((1, "rolled fori_loop"), (True, "unrolled fori_loop")):
    fn = jax.jit(lambda s, x, d, u=unroll: pgd.masked_pgd(
        lambda z: logits(s, z), x, y, d, mask_ratio=RATIO.value, steps=n,
        task=tasks.BINARY, unroll=u))
    rows.append((f"masked PGD round, {name}", _time(fn, state, x, d), n))
  print(f"{MODEL.value} width {WIDTH.value}, {SIZE.value}px, batch {b}, backend "
        f"{jax.default_backend()}, {jax.device_count()} device(s)")
  print(f"{'what':<36} {'ms/call':>10} {'img-steps/s':>12}")
  for name, seconds, steps in rows:
    print(f"{name:<36} {1000 * seconds:>10.1f} {b * steps / seconds:>12.0f}")


if __name__ == "__main__":
  app.run(main)
