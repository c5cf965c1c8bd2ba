"""What stays on the devices for a whole run: the images, their labels and the noise, by rows.

Rows are laid out so that PGD batch b is always the consecutive rows
[b·B, (b+1)·B), whatever the mesh, and is a local slice of every device:
device d holds, for every batch b, the rows b·B + d·c + j (j < c, c = B/D),
at its local positions b·c + j. `take` cuts batch b out of every device
without moving a byte, and a process owns exactly the rows of its own
devices (`Layout.owned`): it reads only those images from disk and puts
them on its devices once. Rows at or past N are padding (zero images,
dropped results).

Training minibatches are drawn from all N rows, as in one process, and
`gather` brings their rows to every device: the surrogate's few training
steps are computed whole on each device, so no gradient is summed in an
order that depends on the mesh or the transport. Class-wise δ
is tiny (one image per class, plus a spare class that padded rows point at)
and is replicated on every device. The host sees δ only at checkpoints and
at the end, and then only its own rows (`local`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from salm_jax import sharding


@dataclasses.dataclass(frozen=True)
class Layout:
  """N rows in `calls` PGD batches of `batch` rows over `ndev` devices."""
  n: int
  batch: int
  ndev: int

  @property
  def calls(self) -> int:
    return -(-self.n // self.batch)

  @property
  def chunk(self) -> int:
    """Rows of one batch on one device."""
    return self.batch // self.ndev

  @property
  def per_device(self) -> int:
    return self.calls * self.chunk

  @property
  def padded(self) -> int:
    return self.per_device * self.ndev

  def device_rows(self, d: int) -> np.ndarray:
    """The rows device d holds, in its local order; values >= n are padding."""
    b = np.arange(self.calls)[:, None] * self.batch
    return (b + d * self.chunk + np.arange(self.chunk)[None, :]).reshape(-1)

  def positions(self, rows: np.ndarray) -> np.ndarray:
    """Where rows sit in the (padded, ...) device array: device-major, then local order."""
    rows = np.asarray(rows, np.int64)
    b, within = np.divmod(rows, self.batch)
    d, j = np.divmod(within, self.chunk)
    return (d * self.per_device + b * self.chunk + j).astype(np.int32)

  def owned(self, mesh, process: int | None = None) -> np.ndarray:
    """The real rows, sorted, on the devices of `process` (default: this one)."""
    process = jax.process_index() if process is None else process
    mine = [self.device_rows(d) for d, dev in enumerate(mesh.devices.flat)
            if dev.process_index == process]
    rows = np.concatenate(mine) if mine else np.zeros(0, np.int64)
    return np.sort(rows[rows < self.n])


def take(rows: jax.Array, b, chunk: int, ndev: int) -> jax.Array:
  """Batch b's slice of a row-laid-out (R·D, ...) array (traceable; local on every device)."""
  blocks = rows.reshape((ndev, -1) + rows.shape[1:])
  part = jax.lax.dynamic_slice_in_dim(blocks, b * chunk, chunk, axis=1)
  return part.reshape((ndev * chunk,) + rows.shape[1:])


def place(rows: jax.Array, values: jax.Array, b, chunk: int, ndev: int) -> jax.Array:
  """`rows` with batch b's slice replaced by `values` (the inverse of `take`; local)."""
  blocks = rows.reshape((ndev, -1) + rows.shape[1:])
  part = values.astype(rows.dtype).reshape((ndev, chunk) + rows.shape[1:])
  return jax.lax.dynamic_update_slice_in_dim(blocks, part, b * chunk, axis=1).reshape(rows.shape)


def put(mesh, layout: Layout, rows: np.ndarray, values: np.ndarray) -> jax.Array:
  """This process's `rows` (sorted) and their `values` onto its devices, zeros for padding.

  Every process calls it with its own rows (`Layout.owned`); none needs another's.
  """
  values = np.asarray(values)
  shape = (layout.padded,) + values.shape[1:]
  target = NamedSharding(mesh, P(sharding.DATA_AXIS))
  local = []
  for d, dev in enumerate(mesh.devices.flat):
    if dev.process_index != jax.process_index():
      continue
    want = layout.device_rows(d)
    block = np.zeros((len(want),) + values.shape[1:], values.dtype)
    real = want < layout.n
    block[real] = values[np.searchsorted(rows, want[real])]
    local.append(jax.device_put(block, dev))
  return jax.make_array_from_single_device_arrays(shape, target, local)


def replicate(mesh, array: np.ndarray) -> jax.Array:
  """Class-wise rows on every device, with a spare (zero) row that padded rows point at."""
  array = np.asarray(array)
  return sharding.replicate(mesh, np.concatenate([array, np.zeros_like(array[:1])]))


def local(array: jax.Array, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
  """(rows, values): this process's real rows of a laid-out array, sorted; no transfer
  between processes."""
  rows, values = [], []
  for shard in array.addressable_shards:
    d = (shard.index[0].start or 0) // layout.per_device
    want = layout.device_rows(d)
    real = want < layout.n
    rows.append(want[real])
    values.append(np.asarray(shard.data)[real])
  rows = np.concatenate(rows)
  order = np.argsort(rows, kind="stable")
  rows, first = np.unique(rows[order], return_index=True)  # replicated shards appear twice
  return rows, np.concatenate(values)[order][first]


def replicated_to_host(array: jax.Array, count: int) -> np.ndarray:
  """The first `count` rows of a replicated (class-wise) array as a writable host array."""
  return np.array(array.addressable_data(0))[:count]


def gather(table: jax.Array, pos: jax.Array, *, mesh, per_device: int) -> jax.Array:
  """Rows `pos` (replicated positions) of a laid-out table, as float32, on every device.

  Each device contributes the rows it holds and zeros elsewhere, and a sum
  across devices adds them up. A sum with one nonzero term is exact, so the
  rows arrive bit for bit whatever the order of the sum, and no device ever
  holds the whole table.
  """
  def part(t, pos):
    lo = jax.lax.axis_index(sharding.DATA_AXIS) * per_device
    mine = (pos >= lo) & (pos < lo + per_device)
    rows = t[jnp.clip(pos - lo, 0, per_device - 1)].astype(jnp.float32)
    rows = jnp.where(mine.reshape(mine.shape + (1,) * (rows.ndim - 2)), rows, 0.0)
    return jax.lax.psum(rows, sharding.DATA_AXIS)
  return jax.shard_map(part, mesh=mesh, in_specs=(P(sharding.DATA_AXIS), P()),
                       out_specs=P(), check_vma=False)(table, pos)


def stats(delta: jax.Array, union: jax.Array, real: jax.Array | None,
          count: int) -> dict[str, float]:
  """The round's record of the noise over the real rows (`real`: their flags, None: the first
  `count` rows): the fraction of pixels ever masked, the fraction nonzero, and L∞ (three
  scalars to the host)."""
  if real is None:
    real = jnp.arange(delta.shape[0]) < count
  return {k: float(v) for k, v in _stats(delta, union, real, count).items()}


@jax.jit
def _stats(delta, union, real, count):
  real = real[:, None, None]
  per_row = lambda m: (m & real).sum((1, 2)).astype(jnp.float32)  # int32-safe at any N
  pixels = count * delta.shape[1] * delta.shape[2]
  return {"frac_masked": per_row(union).sum() / pixels,
          "frac_nonzero": per_row((jnp.abs(delta) > 0).any(-1)).sum() / pixels,
          "linf": jnp.where(real[..., None], jnp.abs(delta), 0.0).max()}
