"""Images/s of the input gradient d loss / d x: the inner op of the noise generator.

Every PGD step of error-minimizing noise is one forward + backward pass to the
input through the (eval-mode) surrogate, so this number bounds how fast noise
can be made. It uses the same pattern as the generator: `nnx.split` the model,
jit a pure function of (state, x, y), time it after a warm-up call with
`block_until_ready`.

  python benchmarks/input_gradient_throughput.py                 # the default table
  python benchmarks/input_gradient_throughput.py --model resnet18 --width 16 --batch 128
  XLA_FLAGS=... python benchmarks/input_gradient_throughput.py   # try compiler flags
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from salm_jax import models

DEFAULT_RUNS = (("resnet18", 64), ("resnet18", 16), ("small_cnn", 16))


def input_gradient_fn(model: nnx.Module, dtype: jnp.dtype):
  """A jitted (state, x, y) -> d sum-loss / d x, with the model's state cast to `dtype`."""
  model.eval()
  graphdef, state = nnx.split(model)
  state = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                       state)

  @jax.jit
  def grad_x(state, x, y):
    def loss(x):
      logits = nnx.merge(graphdef, state)(x).astype(jnp.float32)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()
    return jax.grad(loss)(x)

  return state, grad_x


def measure(name: str, width: int, *, batch: int, iters: int, image_size: int,
            channels: int, dtype: str) -> dict:
  kwargs = {"width": width} if "width" in models.model_options(name) else {}
  model = models.create_model(name, num_classes=2, in_channels=channels,
                              image_size=image_size, rngs=nnx.Rngs(0), **kwargs)
  state, grad_x = input_gradient_fn(model, jnp.dtype(dtype))
  x = jax.random.uniform(jax.random.key(1), (batch, image_size, image_size, channels), dtype)
  y = jnp.zeros((batch,), jnp.int32)
  start = time.perf_counter()
  grad_x(state, x, y).block_until_ready()  # compile + first run, excluded.
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(iters):
    out = grad_x(state, x, y)
  out.block_until_ready()
  seconds = (time.perf_counter() - start) / iters
  return dict(model=name, width=width if kwargs else "-", batch=batch, dtype=dtype,
              img_s=batch / seconds, ms_batch=1e3 * seconds, compile_s=compile_s)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", choices=models.model_names(),
                      help="one model (default: resnet18 w64, resnet18 w16, small_cnn)")
  parser.add_argument("--width", type=int, default=64, help="base width for --model")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--iters", type=int, default=5, help="timed calls after warm-up")
  parser.add_argument("--image-size", type=int, default=28)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  args = parser.parse_args()
  runs = ((args.model, args.width),) if args.model else DEFAULT_RUNS
  print(f"backend={jax.default_backend()} devices={jax.device_count()} "
        f"image={args.image_size}px x{args.channels}")
  print(f"{'model':<12}{'width':>6}{'batch':>7}{'dtype':>10}{'img/s':>9}{'ms/batch':>10}"
        f"{'compile s':>11}")
  for name, width in runs:
    r = measure(name, width, batch=args.batch, iters=args.iters,
                image_size=args.image_size, channels=args.channels, dtype=args.dtype)
    print(f"{r['model']:<12}{r['width']:>6}{r['batch']:>7}{r['dtype']:>10}{r['img_s']:>9.1f}"
          f"{r['ms_batch']:>10.1f}{r['compile_s']:>11.1f}", flush=True)


if __name__ == "__main__":
  main()
