"""Placing batches on a device mesh, on one host or many.

The generator shards every batch over one 'data' mesh axis and replicates the
surrogate. The images and the noise are put on the devices by rows once, each
process its own (`noise/salm/resident.py`); `shard_batch` hands each device
its slice of a host array that every process holds (a minibatch's labels),
built with `jax.make_array_from_callback`, which works the same under one
process and under `jax.distributed` (TPU pods, GPU clusters). `to_host`
gathers a small array (a batch's saliency) to every process.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (global) devices, axis 'data'.

  The axis is 'Auto' (GSPMD propagates shardings inside jit): the library's
  functions are written for a single device and the compiler partitions them.
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def shard_batch(mesh: Mesh, array: np.ndarray, axis: int = 0) -> jax.Array:
  """Host array (same on every process), axis `axis` split over 'data'."""
  array = np.asarray(array)
  sharding = NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))
  return jax.make_array_from_callback(array.shape, sharding, lambda idx: array[idx])


def replicate(mesh: Mesh, tree):
  """Every leaf copied to every device of the mesh (same host values on every process)."""
  sharding = replicated_sharding(mesh)

  def put(leaf):
    leaf = to_host(leaf) if isinstance(leaf, jax.Array) else np.asarray(leaf)
    return jax.make_array_from_callback(leaf.shape, sharding, lambda idx: leaf[idx])
  return jax.tree.map(put, tree)


def to_host(array: jax.Array) -> np.ndarray:
  """The whole global array as numpy on every process."""
  if getattr(array, "is_fully_addressable", True):
    return np.asarray(array)
  if array.sharding.is_fully_replicated:
    return np.asarray(array.addressable_data(0))
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))
