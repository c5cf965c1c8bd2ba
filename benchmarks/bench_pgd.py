"""Throughput of one masked PGD round: salm_jax vs the same round written the PyTorch way.

The round timed is the one `configs/salm.py` ships (`--variant=cpu`: 10
steps of 1.6/255; `--variant=full`: 20 steps of 0.8/255), ratio 0.1,
ε = 8/255, masks re-chosen at every step, δ cut to its own top-k pixels at
the end: class-wise by default (one δ per class, indexed by the images'
labels, as on single-label data), or per image with `--mode=sample` (as on
multi-label data). For each surrogate (MedMNIST's ResNet-18 with the 28 px
stem at full width 64 and at width 16, and the small CNN) on 28 px gray and
RGB images, one round over `--batch` images with 2 classes, in
images x steps per second:

  * jax:   `salm_jax.noise.salm.pgd.masked_round` compiled as the generator
           compiles it (its XLA:CPU options, its loop unrolling);
  * torch: `benchmarks/torch_pgd.py`, EM's reference loop with the same
           masks and projection, on the PyTorch twin of the same model
           carrying the same weights.

All run in this process, interleaved repeat by repeat (`timing.interleaved`).
PyTorch is timed at its default thread count (one per core, as JAX's pool)
and at one thread: on a loaded shared machine its OpenMP barriers can make
the default several times slower, and the ratio is taken against whichever
PyTorch setting was faster. Also printed: the round's compile time, XLA's
FLOP count of one input gradient, the fraction of a 2048² f32 matmul's
GFLOP/s (timed right after the case) the round reaches, and the fraction of
δ entries on which the two first rounds agree.

  python -m benchmarks.bench_pgd                                  # all cases
  python -m benchmarks.bench_pgd --cases=resnet18:64:1 --repeats=5
  python -m benchmarks.bench_pgd --mode=sample --unroll=1 --dtype=bfloat16
"""
from __future__ import annotations

import argparse
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from benchmarks import machine, timing
from salm_jax import tasks
from salm_jax import xla_cpu
from salm_jax.noise.salm import pgd
from salm_jax.noise.salm import surrogate as surrogate_lib

DEFAULT_CASES = ("resnet18:64:1", "resnet18:64:3", "resnet18:16:1", "resnet18:16:3",
                 "small_cnn:16:1", "small_cnn:16:3")
NUM_CLASSES = 2  # the synthetic task's classes, hence class-wise δ's groups
# PyTorch's own default (one thread per core). On a loaded machine its OpenMP
# barriers make 2 threads far slower than 1, so both are timed.
TORCH_DEFAULT_THREADS = os.cpu_count() or 1


class Round(NamedTuple):
  """One PGD round's settings: mask ratio, ε, α per step, number of steps."""
  ratio: float
  epsilon: float
  step_size: float
  steps: int


def shipped_round(variant: str = "cpu", steps: int = 0) -> Round:
  """The round of `configs/salm.py` ('cpu': the default, 'full': its ',full' variant);
  `steps` > 0 replaces its number of steps."""
  from configs import salm
  noise = salm.get_config("breastmnist" + (",full" if variant == "full" else "")).noise
  if noise.mask_schedule != "step":
    raise ValueError(f"bench_pgd times mask_schedule='step'; the config has "
                     f"{noise.mask_schedule!r}.")
  return Round(float(noise.mask_ratio), float(noise.epsilon), float(noise.step_size),
               int(steps or noise.pgd_steps))


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                      help="comma list of model:width:channels")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--variant", default="cpu", choices=("cpu", "full"),
                      help="whose round: configs/salm.py's default or its ',full' variant")
  parser.add_argument("--steps", type=int, default=0, help="steps per round (0: the variant's)")
  parser.add_argument("--mode", default="class", choices=("class", "sample"),
                      help="one δ per class (single-label data) or per image (multi-label)")
  parser.add_argument("--repeats", type=int, default=2, help="timed rounds per contender")
  parser.add_argument("--unroll", default=None,
                      help="fori_loop unroll (int, or 'true'); default pgd.default_unroll()")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="surrogate compute dtype in the JAX round (δ stays float32)")
  parser.add_argument("--no_torch", action="store_true", help="time salm_jax only")
  parser.add_argument("--torch_threads", default=f"{TORCH_DEFAULT_THREADS},1",
                      help="PyTorch thread counts, each timed; the ratio uses the fastest")
  parser.add_argument("--torch_device", default="cpu",
                      help="'cuda' on a GPU machine (JAX then runs on its default GPU too)")
  parser.add_argument("--matmul_n", type=int, default=2048,
                      help="side of the f32 matmul whose GFLOP/s is the practical peak "
                           "(8192 on a GPU)")


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
  """GFLOP/s of a jitted n x n float32 matmul: the machine's practical FLOP peak."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  mm = jax.jit(lambda a: a @ a)
  jax.block_until_ready(mm(a))
  best = min(timing.seconds(lambda: mm(a)) for _ in range(repeats))
  return 2 * n**3 / best / 1e9


def make_surrogate(model: str, width: int, channels: int, seed: int = 0):
  cfg = ml_collections.ConfigDict(dict(model=model, width=width, lr=0.1, momentum=0.9,
                                       weight_decay=5e-4))
  return surrogate_lib.create(cfg, task=tasks.BINARY, num_classes=NUM_CLASSES,
                              in_channels=channels, image_size=28, seed=seed)


def jax_round(sur, rnd: Round, *, unroll, dtype: str = "float32", donate: bool = False,
              compiler_options="library"):
  """The generator's PGD round, jitted: (state, x, y, δ, groups) -> (δ, union of masks).

  `groups` (B,) int32 with δ (G, H, W, C) runs the class-wise round, None
  with δ (B, H, W, C) the per-image one. With the defaults this is the
  program `generator.compiled_steps(...).pgd_round` compiles.
  compiler_options: 'library' (the generator's own, `salm_jax.xla_cpu.options()`),
  or a dict / None (XLA's defaults) for `bench_levers`.
  """
  def logits_fn(state):
    if dtype == "float32":
      return sur.logits_fn(state)
    cast = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating)
                        else a, state)
    return lambda z: sur.logits_fn(cast)(z.astype(dtype)).astype(jnp.float32)

  def round_fn(state, x, y, delta, groups):
    return pgd.masked_round(logits_fn(state), x, y, delta, rnd.epsilon, rnd.step_size, None,
                            groups, ratio=rnd.ratio, steps=rnd.steps, task=sur.task,
                            schedule="step", return_mask=True, unroll=unroll)
  if compiler_options == "library":
    compiler_options = xla_cpu.options()
  return jax.jit(round_fn, donate_argnums=(3,) if donate else (),
                 compiler_options=compiler_options)


def gflop_per_image_step(sur, state, x, y) -> float:
  """XLA's FLOP count of one forward + backward-to-input pass, per image."""
  def grad(state, x, d):
    loss = lambda d: tasks.per_example_loss(sur.logits_fn(state)(x + d), y, sur.task).sum()
    return jax.grad(loss)(d)
  cost = jax.jit(grad).lower(state, x, jnp.zeros_like(x)).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan"))) / x.shape[0] / 1e9


def synthetic_batch(batch: int, channels: int, seed: int = 1):
  """Random 28 px images and binary labels (timings do not depend on the pixels)."""
  rng = np.random.default_rng(seed)
  images = rng.random((batch, 28, 28, channels), dtype=np.float32)
  labels = rng.integers(0, NUM_CLASSES, (batch, 1)).astype(np.int32)
  return images, labels


def round_inputs(images: np.ndarray, labels: np.ndarray, mode: str):
  """(zero δ, groups) of a first round: (G, H, W, C) and the class labels, or (B, ...) and None."""
  if mode == "class":
    return np.zeros((NUM_CLASSES,) + images.shape[1:], np.float32), labels[:, 0].copy()
  if mode == "sample":
    return np.zeros_like(images), None
  raise ValueError(f"mode must be 'class' or 'sample', got {mode!r}.")


def torch_contender(sur, state, model, width, channels, images, labels, rnd: Round,
                    mode: str = "class", device: str = "cpu"):
  """(twin, round closure taking a thread count, box) for the PyTorch side.

  Rounds chain (each starts from the last δ); box['first'] keeps the first
  round's δ (NHWC), which started from zero like salm_jax's first round.
  """
  import torch
  from benchmarks import torch_models, torch_pgd
  flax_model = nnx.merge(sur.graphdef, state["params"], state["rest"])
  twin = torch_models.create(model, num_classes=NUM_CLASSES, in_channels=channels, width=width)
  torch_models.copy_from_nnx(twin, flax_model).eval()
  twin.to(device)
  for p in twin.parameters():
    p.requires_grad_(False)
  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(device)
  delta, groups = round_inputs(images, labels, mode)
  x, y = nchw(images), torch.from_numpy(labels).to(device)
  groups = None if groups is None else torch.from_numpy(groups).long().to(device)
  kw = dict(rnd._asdict(), groups=groups)
  box = {"delta": nchw(delta)}

  def run(threads: int = 0):
    torch.set_num_threads(threads or TORCH_DEFAULT_THREADS)
    box["delta"], _ = torch_pgd.masked_pgd(twin, x, y, box["delta"], **kw)
    if device != "cpu":
      torch.cuda.synchronize()  # the timer waits for the GPU, as block_until_ready does for JAX
    box.setdefault("first", box["delta"].cpu().numpy().transpose(0, 2, 3, 1))  # from δ = 0
  return twin, run, box


def _jax_contender(sur, state, images, labels, rnd: Round, args):
  """(round closure, first-round δ, compile seconds, first-round seconds, unroll) for salm_jax."""
  unroll = pgd.default_unroll() if args.unroll is None else (
      True if str(args.unroll).lower() == "true" else int(args.unroll))
  fn = jax_round(sur, rnd, unroll=unroll, dtype=args.dtype)
  delta, groups = round_inputs(images, labels, args.mode)
  x, y, zero = jnp.asarray(images), jnp.asarray(labels), jnp.asarray(delta)
  groups = None if groups is None else jnp.asarray(groups)
  start = time.perf_counter()
  compiled = fn.lower(state, x, y, zero, groups).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  first, _ = jax.block_until_ready(compiled(state, x, y, zero, groups))
  first_s = time.perf_counter() - start
  box = {"delta": zero}

  def run():
    box["delta"], mask = compiled(state, x, y, box["delta"], groups)
    return mask
  return run, np.asarray(first), compile_s, first_s, unroll


def measure_case(case: str, args) -> dict:
  model, width, channels = case.split(":")
  width, channels = int(width), int(channels)
  rnd = shipped_round(args.variant, args.steps)
  sur, state = make_surrogate(model, width, channels)
  images, labels = synthetic_batch(args.batch, channels)
  run_jax, jax_first, compile_s, first_s, unroll = _jax_contender(sur, state, images, labels,
                                                                  rnd, args)
  contenders, torch_box = {"jax": run_jax}, None
  row = {"model": model, "width": width, "channels": channels, "batch": args.batch,
         "steps": rnd.steps, "step_size": rnd.step_size, "mask_ratio": rnd.ratio,
         "epsilon": rnd.epsilon, "mode": args.mode, "unroll": str(unroll), "dtype": args.dtype,
         "jax_compile_s": round(compile_s, 2), "jax_first_round_s": round(first_s, 2),
         "load_before": machine.load()}
  if not args.no_torch and has_torch():
    twin, run_torch, torch_box = torch_contender(sur, state, model, width, channels, images,
                                                 labels, rnd, args.mode, args.torch_device)
    from benchmarks import torch_models
    row["params_jax"] = sum(np.size(a) for a in jax.tree.leaves(state["params"]))
    row["params_torch"] = torch_models.num_params(twin)
    for threads in _torch_threads(args):
      contenders[f"torch{threads}"] = lambda t=threads: run_torch(t)
  times = timing.interleaved(contenders, args.repeats)
  _add_speeds(row, times, args.batch * rnd.steps)
  if torch_box is not None:
    row["delta_agreement"] = float(np.mean(np.abs(jax_first - torch_box["first"]) < 1e-6))
  x, y = jnp.asarray(images), jnp.asarray(labels)
  row["gflop_per_image_step"] = round(gflop_per_image_step(sur, state, x, y), 4)
  row["matmul_gflops"] = round(matmul_gflops(args.matmul_n), 1)
  row["jax_fraction_of_peak"] = round(
      row["jax_img_steps_s"] * row["gflop_per_image_step"] / row["matmul_gflops"], 3)
  row["load_after"] = machine.load()
  return row


def _add_speeds(row: dict, times: dict, work: int) -> None:
  """img·steps/s of every contender, and jax over the faster PyTorch thread setting."""
  for name, t in times.items():
    row[f"{name}_img_steps_s"] = round(work / t["best"], 1)
    row[f"{name}_median_img_steps_s"] = round(work / t["median"], 1)
    row[f"{name}_seconds"] = t["all"]
  torch_names = [n for n in times if n.startswith("torch")]
  if torch_names:
    best = max(torch_names, key=lambda n: row[f"{n}_img_steps_s"])
    row["torch_best"], row["torch_img_steps_s"] = best, row[f"{best}_img_steps_s"]
    row["ratio"] = round(row["jax_img_steps_s"] / row["torch_img_steps_s"], 3)


def _torch_threads(args) -> list[int]:
  return [int(t) for t in str(args.torch_threads).split(",")]


def has_torch() -> bool:
  try:
    import torch  # noqa: F401
    return True
  except ImportError:
    return False


def table(rows: list[dict]) -> str:
  first = rows[0]
  lines = [f"masked PGD round ({first['mode']}-wise δ, mask ratio {first['mask_ratio']}, "
           f"ε {255 * first['epsilon']:.0f}/255, α {255 * first['step_size']:.1f}/255), "
           "img·steps/s, best of repeats",
           "| model | width | ch | batch×steps | compile s | jax | torch (threads) | jax/torch | "
           "GFLOP/img·step | jax % of matmul GFLOP/s | δ agree | params jax/torch | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['model']} | {r['width']} | {r['channels']} | {r['batch']}×{r['steps']} | "
        f"{r['jax_compile_s']:.1f} | {r['jax_img_steps_s']:.0f} | "
        f"{r.get('torch_img_steps_s', float('nan')):.0f} ({r.get('torch_best', '-')[5:]}) | "
        f"{r.get('ratio', float('nan')):.2f} | "
        f"{r['gflop_per_image_step']:.3f} | {100 * r['jax_fraction_of_peak']:.0f}% of "
        f"{r['matmul_gflops']:.0f} | "
        f"{r.get('delta_agreement', float('nan')):.3f} | "
        f"{r.get('params_jax', '-')}/{r.get('params_torch', '-')} | {r['load_after'][0]} |")
  return "\n".join(lines)


def run(args) -> dict:
  rows = []
  for case in args.cases.split(","):
    rows.append(measure_case(case, args))
    print(f"  {case}: jax {rows[-1]['jax_img_steps_s']:.0f} torch "
          f"{rows[-1].get('torch_img_steps_s', float('nan')):.0f} img·steps/s", flush=True)
  result = {"benchmark": "pgd", "rows": rows, "args": vars(args)}
  print(table(rows), flush=True)
  return result


def main() -> None:
  machine.cli(__doc__, add_arguments, run, "pgd")

if __name__ == "__main__":
  main()
