"""Victim train-step throughput of zoo models, with the library's convolution and with XLA's own.

One step is what a victim runs per batch: forward, backward and an Adam
update, jitted with the library's CPU options, at 28 px, one channel.
`xla conv` is the same model with every conv handed to
`lax.conv_general_dilated`, so the pair measures `common.conv_general_dilated`
(a matmul over patches for maps smaller than the kernel, such as VGG-16's
2 x 2 px last stage). The two are timed interleaved; compile is excluded.

  python -m benchmarks.bench_models --results_dir=benchmarks/results/cpu_<date>  # full width
  python -m benchmarks.bench_models --models=vgg16 --width=16 --batch=32
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax

from benchmarks import machine, timing
from salm_jax import models
from salm_jax.evaluation import defenses, victim


def _train_step(model: nnx.Module, batch: int):
  """A zero-argument callable running the victim's jitted train step on a fixed batch."""
  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adam(1e-3)
  step = victim.make_train_step(graphdef, tx, "binary-class", 2, defenses.get("none"))
  state = [victim.VictimState(params, rest, tx.init(params), jnp.zeros((), jnp.int32))]
  images = jax.random.uniform(jax.random.key(0), (batch, 28, 28, 1))
  labels = (jnp.arange(batch) % 2)[:, None]

  def run():
    state[0], metrics = step(state[0], (images, labels), jax.random.key(1))
    return metrics["loss"]
  return run


def _with_xla_conv(model: nnx.Module) -> nnx.Module:
  """The model with every conv handed straight to `lax.conv_general_dilated`."""
  for _, module in nnx.iter_modules(model):
    if isinstance(module, nnx.Conv):
      module.conv_general_dilated = lax.conv_general_dilated
  return model


def run(args: argparse.Namespace) -> dict:
  result = {"batch": args.batch, "width": args.width, "models": {}}
  for name in args.models.split(","):
    build = lambda: models.create_model(name, num_classes=2, in_channels=1, image_size=28,
                                        rngs=nnx.Rngs(0), width=args.width)
    steps = {"library conv": _train_step(build(), args.batch),
             "xla conv": _train_step(_with_xla_conv(build()), args.batch)}
    for fn in steps.values():  # compile
      jax.block_until_ready(fn())
    times = timing.interleaved(steps, args.repeats)
    result["models"][name] = times
    for which, t in times.items():
      print(f"{name:>10} w{args.width} {which:>12}: {t['best']:7.2f} s/step (median "
            f"{t['median']:.2f}), {args.batch / t['best']:7.1f} img/s")
  result["load"] = machine.load()
  return result


def _arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--models", default="vgg16,resnet18",
                      help="comma-separated zoo models that take `width` (not vit_small)")
  parser.add_argument("--width", type=int, default=64, help="the models' width (64: full)")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3)


if __name__ == "__main__":
  machine.cli(__doc__, _arguments, run, lambda a: f"models_w{a.width}_b{a.batch}")
