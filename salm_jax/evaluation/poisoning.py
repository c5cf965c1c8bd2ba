"""Who protected what: partial poisoning and collaborative (multi-party) datasets.

In practice not every image of a training set is protected. The SALM paper's
case study protects only a fraction p of the data, and a dataset pooled from
several hospitals holds parts that each contributor protected on its own,
with its own surrogate and seed. These functions build such training sets so
victims can be trained on them; everything is determined by explicit keys.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from salm_jax.data.dataset import Dataset, Split, as_float, as_uint8_like


def poisoned_subset(n: int, fraction: float, key: jax.Array) -> np.ndarray:
  """Bool (n,): a random round(fraction × n) of the examples, chosen by `key`."""
  if not 0.0 <= float(fraction) <= 1.0:
    raise ValueError(f"poison fraction must be in [0, 1], got {fraction}.")
  k = int(round(float(fraction) * n))
  mask = np.zeros(n, dtype=bool)
  mask[np.asarray(jax.random.permutation(key, n))[:k]] = True
  return mask


def mix_poisoned(clean: Split, protected: Split, fraction: float,
                 key: jax.Array) -> tuple[Split, np.ndarray]:
  """A split with a random `fraction` of images taken from `protected`, the rest clean.

  Returns the split and the bool mask of the protected examples. Labels are
  the clean ones (protection never changes labels; a mismatch is an error).
  """
  if clean.images.shape != protected.images.shape:
    raise ValueError(f"clean images {clean.images.shape} and protected images "
                     f"{protected.images.shape} differ in shape.")
  if not np.array_equal(clean.labels, protected.labels):
    raise ValueError("clean and protected splits have different labels; they must be the "
                     "same examples in the same order.")
  mask = poisoned_subset(len(clean), fraction, key)
  sel = mask.reshape((-1,) + (1,) * (clean.images.ndim - 1))
  return Split(np.where(sel, protected.images, clean.images), clean.labels), mask


def party_assignment(n: int, n_parties: int, key: jax.Array) -> np.ndarray:
  """int (n,): a random split of the examples into `n_parties` near-equal parts."""
  if not 1 <= n_parties <= max(n, 1):
    raise ValueError(f"n_parties must be in 1..{n} (the training set size), got {n_parties}.")
  parties = np.empty(n, dtype=np.int64)
  for i, idx in enumerate(np.array_split(np.asarray(jax.random.permutation(key, n)), n_parties)):
    parties[idx] = i
  return parties


ProtectFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def collaborative_protect(dataset: Dataset, n_parties: int, protect_fn: ProtectFn,
                          key: jax.Array) -> tuple[Dataset, np.ndarray]:
  """Each of `n_parties` contributors protects its own part of the training set.

  `protect_fn(images_float, labels, seed) -> delta` is called once per party
  on that party's images (float NHWC in [0, 1]) and labels, with the party's
  own seed (drawn from `key`); it returns noise of the same shape, e.g. the
  SALM generator trained on the party's data alone. The protected training
  images are round(clip(x + delta) × 255); val and test are untouched.

  Returns the dataset with its protected train split and the (N,) party index
  of each training example.
  """
  train = dataset.train
  k_split, k_seeds = jax.random.split(key)
  parties = party_assignment(len(train), n_parties, k_split)
  seeds = np.asarray(jax.random.randint(k_seeds, (n_parties,), 0, 2**31 - 1))
  x = as_float(train.images)
  out = x.copy()
  for p in range(n_parties):
    idx = np.flatnonzero(parties == p)
    delta = np.asarray(protect_fn(x[idx], train.labels[idx], int(seeds[p])), dtype=np.float32)
    if delta.shape != x[idx].shape:
      raise ValueError(f"protect_fn returned noise of shape {delta.shape} for party {p}; "
                       f"expected {x[idx].shape} (the party's images, NHWC).")
    out[idx] = np.clip(x[idx] + delta, 0.0, 1.0)
  protected = Split(as_uint8_like(out, train.images), train.labels)
  return dataset.replace(splits={**dataset.splits, "train": protected}), parties
