"""The noise kept on the devices for a whole run: its rows' layout and per-batch slices.

Per-image δ is an (R·D, H, W, C) array sharded over the mesh's 'data' axis:
device d holds rows [d·R, (d+1)·R), R = calls × chunk. PGD batch b takes
rows d·R + b·chunk + j (j < chunk) from every device, so a batch is a local
slice of every device's block: the generator's per-image round runs each
device on its own rows (`shard_map`) and moves no noise between devices or
to the host. Rows at or past N are padding (their images wrap around,
their results are dropped). On one device the batches are the consecutive
rows [b·B, (b+1)·B), as a host loop over the data would take them.

Class-wise δ is tiny (one image per class, plus a spare class that padded
rows point at) and is replicated on every device.

The host sees δ only at checkpoints and at the end (`to_host`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

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

  def rows(self, b: int) -> np.ndarray:
    """The (batch,) row positions of batch b; positions >= n are padding."""
    starts = np.arange(self.ndev)[:, None] * self.per_device + b * self.chunk
    return (starts + np.arange(self.chunk)[None, :]).reshape(-1)


def take(rows: jax.Array, b, chunk: int, ndev: int) -> jax.Array:
  """Batch b's slice of a row-sharded (R·D, ...) array (traceable; local on every device)."""
  blocks = rows.reshape((ndev, -1) + rows.shape[1:])
  part = jax.lax.dynamic_slice_in_dim(blocks, b * chunk, chunk, axis=1)
  return part.reshape((ndev * chunk,) + rows.shape[1:])


def to_devices(mesh, array: np.ndarray, layout: Layout | None) -> jax.Array:
  """Host rows onto the mesh: row-sharded and padded (`layout`), or replicated with a spare row
  (`layout=None`, class-wise)."""
  array = np.asarray(array)
  if layout is None:
    spare = np.concatenate([array, np.zeros_like(array[:1])])
    return sharding.replicate(mesh, spare)
  padded = np.zeros((layout.padded,) + array.shape[1:], array.dtype)
  padded[:len(array)] = array
  return sharding.shard_batch(mesh, padded)


def to_host(array: jax.Array, count: int) -> np.ndarray:
  """The first `count` rows (the real ones) as a writable host array."""
  return np.array(sharding.to_host(array)[:count])


def stats(delta: jax.Array, union: jax.Array, count: int) -> dict[str, float]:
  """The round's record of the noise over the real rows: the fraction of pixels ever masked,
  the fraction nonzero, and L∞ (three scalars to the host)."""
  return {k: float(v) for k, v in _stats(delta, union, count).items()}


@jax.jit
def _stats(delta, union, count):
  real = (jnp.arange(delta.shape[0]) < count)[:, None, None]
  per_row = lambda m: (m & real).sum((1, 2)).astype(jnp.float32)  # int32-safe at any N
  pixels = count * delta.shape[1] * delta.shape[2]
  return {"frac_masked": per_row(union).sum() / pixels,
          "frac_nonzero": per_row((jnp.abs(delta) > 0).any(-1)).sum() / pixels,
          "linf": jnp.where(real[..., None], jnp.abs(delta), 0.0).max()}
