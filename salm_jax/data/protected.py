"""A protected dataset on disk: a MedMNIST file, its noise, and a manifest.

The point of protecting data is to publish it, so the output must be an
ordinary MedMNIST npz that `medmnist`'s loaders and training scripts read
unchanged: same keys, uint8 images, the very same label arrays, unperturbed
splits copied bit for bit. Data that came in another layout goes back out in
it: flat (N,) labels stay flat, and a folder of images (or DICOM files) with
its labels.csv becomes a folder `<name>/` with the same file names (see
`folder.py`); the manifest's `dataset.layout` says which. Beside the data,
`noise.npz` keeps the exact int8 noise (protected − clean) and the SALM masks,
and `manifest.json` records how it was made and the MD5 of every file. The
manifest is written last, so its presence means the run finished;
`read_protected` refuses files that do not match it.

The noise lives in [−ε, ε] in float space; `quantize` turns it into uint8
images whose every pixel stays within round(255·ε) of the clean one, which is
the promise the manifest states.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
from typing import Any, Mapping

import numpy as np

from salm_jax import atomic
from salm_jax import tasks
from salm_jax.data import folder as folder_lib
from salm_jax.data import info as info_lib
from salm_jax.data import labels_csv
from salm_jax.data import npz_io
from salm_jax.data.dataset import SPLITS, Dataset, Split, rows_per_chunk
from salm_jax.data.download import md5_file

FORMAT = "salm_jax.protected/1"
NOISE_FILE = "noise.npz"
MANIFEST_FILE = "manifest.json"
_MANIFEST_KEYS = ("epsilon", "mask_ratio", "seed", "surrogate")


def linf_bound(epsilon: float) -> int:
  """The uint8 L∞ budget: round(255·ε)."""
  if not 0.0 <= float(epsilon) <= 1.0:
    raise ValueError(f"epsilon must be in [0, 1] (float pixel units), got {epsilon}.")
  return int(np.rint(255.0 * float(epsilon)))


def quantize(clean_uint8: np.ndarray, delta: np.ndarray, epsilon: float) -> np.ndarray:
  """uint8 images clean + delta, rounded, with |out − clean| ≤ round(255·ε) everywhere.

  Args:
    clean_uint8: (N, H, W) or (N, H, W, C) uint8.
    delta: float noise, NHWC (C = 1 for gray), in [0, 1] pixel units.
    epsilon: the float L∞ budget.

  Returns:
    uint8 in the layout of `clean_uint8`.
  """
  clean = np.asarray(clean_uint8)
  if clean.dtype != np.uint8:
    raise ValueError(f"quantize: clean images must be uint8, got {clean.dtype}.")
  nhwc = clean.shape + (1,) if clean.ndim == 3 else clean.shape
  delta = np.asarray(delta)
  if delta.shape != nhwc:
    raise ValueError(f"quantize: delta shape {delta.shape} does not match clean images "
                     f"{clean.shape} (as NHWC {nhwc}).")
  if not np.isfinite(delta).all():
    raise ValueError("quantize: delta contains NaN or inf.")
  bound = linf_bound(epsilon)
  out = np.empty(nhwc, np.uint8)
  step = rows_per_chunk(nhwc)
  for start in range(0, len(out), step):  # in chunks: no float64 copy of the whole dataset
    part = slice(start, start + step)
    base = clean.reshape(nhwc)[part].astype(np.int16)
    target = np.rint(base + 255.0 * delta[part].astype(np.float64))
    out[part] = np.clip(target, np.maximum(base - bound, 0), np.minimum(base + bound, 255))
  return out.reshape(clean.shape)



def output_file_name(dataset: Dataset) -> str:
  """MedMNIST's file name for a named dataset (so `medmnist` finds it), else `<name>.npz`."""
  if dataset.name in info_lib.INFO and dataset.image_size in info_lib.SIZES:
    return info_lib.file_name(dataset.name, dataset.image_size)
  return f"{dataset.name}.npz"


def write_protected(out_dir: str, dataset: Dataset,
                    protected_images: Mapping[str, np.ndarray],
                    masks: Mapping[str, np.ndarray], *, config: Mapping[str, Any],
                    split_stats: Mapping[str, Any], extra: Mapping[str, Any] | None = None,
                    overwrite: bool = False) -> dict:
  """Writes the protected npz, `noise.npz`, then `manifest.json`; returns the manifest.

  Splits in `protected_images` are replaced; the others are copied bit for
  bit. epsilon, mask_ratio, seed and surrogate are taken from `extra` if given
  there, else from `config` (top level first, then its nested blocks).
  """
  out_dir = os.path.expanduser(out_dir)
  manifest_path = os.path.join(out_dir, MANIFEST_FILE)
  if os.path.exists(manifest_path):
    if not overwrite:
      raise FileExistsError(f"{manifest_path} exists; pass overwrite=True to replace it.")
    os.remove(manifest_path)  # Until the new manifest lands, the folder is incomplete.
  config, fields = manifest_fields(config, extra)
  noise = _check_and_diff(dataset, protected_images, masks, fields["epsilon"])
  data = _write_data(out_dir, dataset, protected_images)
  atomic.save_npz(os.path.join(out_dir, NOISE_FILE), compressed=True,
                  **_noise_arrays(noise, masks))
  manifest = build_manifest(out_dir, dataset, data, sorted(protected_images), config, fields,
                            split_stats, extra)
  atomic.write_json(manifest_path, manifest)
  return manifest


def manifest_fields(config: Mapping[str, Any], extra) -> tuple[dict, dict]:
  """(the config as plain data, the manifest's epsilon, mask_ratio, seed and surrogate)."""
  config = _plain(config)
  fields = {k: _find_key(config, k) for k in _MANIFEST_KEYS}
  fields.update({k: v for k, v in _plain(extra or {}).items() if k in _MANIFEST_KEYS})
  return config, fields


def npz_data_entry(out_dir: str, dataset: Dataset, name: str) -> dict:
  """The manifest's record of a written npz: {'name', 'md5', 'kind', 'layout'}."""
  flat = npz_io.has_flat_labels(dataset.layout)
  layout = {"format": "npz", "label_shape": "(N,)" if flat else "(N, L)"}
  if flat:
    layout["note"] = "labels written flat as (N,), as the input file stored them"
  return {"name": name, "md5": md5_file(os.path.join(out_dir, name)), "kind": "npz",
          "layout": layout}


def _write_data(out_dir, dataset, protected_images) -> dict:
  """The protected data in its source's layout: {'name', 'md5', 'kind', 'layout'}."""
  if dataset.layout.get("format") == folder_lib.FORMAT:
    name, md5, layout = folder_lib.write_folder(out_dir, dataset, protected_images)
    return {"name": name, "md5": md5, "kind": "folder", "layout": layout}
  splits = {s: Split(images=protected_images.get(s, dataset.splits[s].images),
                     labels=dataset.splits[s].labels) for s in SPLITS}
  name = output_file_name(dataset)
  npz_io.write_npz(os.path.join(out_dir, name), splits,
                   flat_labels=npz_io.has_flat_labels(dataset.layout))
  return npz_data_entry(out_dir, dataset, name)


def _check_and_diff(dataset, protected_images, masks, epsilon) -> dict[str, np.ndarray]:
  """Checks shapes, dtypes and the L∞ budget; returns int8 noise per split."""
  if set(masks) != set(protected_images):
    raise ValueError(f"masks are given for splits {sorted(masks)} but images for "
                     f"{sorted(protected_images)}; they must match.")
  noise = {}
  for s, images in protected_images.items():
    if s not in SPLITS:
      raise ValueError(f"Unknown split {s!r}; expected one of {SPLITS}.")
    clean = dataset.splits[s].images
    if images.dtype != np.uint8 or images.shape != clean.shape:
      raise ValueError(f"protected {s} images must be uint8 of shape {clean.shape}, got "
                       f"{images.dtype} {images.shape}.")
    mask = np.asarray(masks[s])
    if mask.dtype != np.bool_ or mask.shape != clean.shape[:3]:
      raise ValueError(f"mask of {s} must be bool of shape {clean.shape[:3]}, got "
                       f"{mask.dtype} {mask.shape}.")
    diff = images.astype(np.int16) - clean.astype(np.int16)
    limit = 127 if epsilon is None else linf_bound(epsilon)
    worst = int(np.abs(diff).max(initial=0))
    if worst > limit:
      raise ValueError(f"protected {s} images differ from the clean ones by {worst} uint8 "
                       f"units, over the bound {limit}" + (
                           f" = round(255·{epsilon})." if epsilon is not None else
                           " that int8 noise can hold."))
    noise[s] = diff.astype(np.int8)
  return noise


def _noise_arrays(noise, masks) -> dict[str, np.ndarray]:
  arrays = {}
  for s, diff in noise.items():
    arrays[f"{s}_noise"] = diff
    arrays[f"{s}_mask_bits"] = np.packbits(np.asarray(masks[s]).ravel())
    arrays[f"{s}_mask_shape"] = np.asarray(masks[s].shape, dtype=np.int64)
  return arrays


def build_manifest(out_dir, dataset, data, perturbed, config, fields, split_stats,
                   extra) -> dict:
  """manifest.json's content for files already written in `out_dir`."""
  files = {"data": {k: data[k] for k in ("name", "md5", "kind")},
           "noise": {"name": NOISE_FILE, "md5": md5_file(os.path.join(out_dir, NOISE_FILE))}}
  manifest = {
      "format": FORMAT,
      "salm_jax_version": _version(),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "dataset": {"name": dataset.name, "task": dataset.task,
                  "num_classes": int(dataset.num_classes),
                  "label_names": dict(dataset.label_names),
                  "image_size": dataset.image_size, "channels": dataset.channels,
                  "source": dataset.source, "source_md5": dataset.source_md5,
                  "layout": data["layout"]},
      "perturbed_splits": list(perturbed),
      "linf_bound_uint8": None if fields["epsilon"] is None else linf_bound(fields["epsilon"]),
      "config": config,
      "split_stats": _plain(split_stats),
      "files": files,
  }
  manifest.update(fields)
  for k, v in _plain(extra or {}).items():
    manifest.setdefault(k, v)
  return manifest


def read_protected(out_dir: str) -> tuple[Dataset, dict]:
  """Loads a protected dataset after checking its files against the manifest."""
  out_dir = os.path.expanduser(out_dir)
  manifest = _read_manifest(out_dir)
  for role, entry in manifest["files"].items():
    if not os.path.exists(os.path.join(out_dir, entry["name"])):
      raise ValueError(f"{out_dir}: the manifest lists {role} file {entry['name']}, "
                       "which is missing.")
  for entry in manifest["files"].values():
    path = os.path.join(out_dir, entry["name"])
    got = folder_lib.folder_digest(path) if os.path.isdir(path) else md5_file(path)
    if got != entry["md5"]:
      raise ValueError(f"{path}: MD5 {got} does not match the manifest's {entry['md5']}; "
                       "the file was changed after protection.")
  meta = manifest["dataset"]
  path = os.path.join(out_dir, manifest["files"]["data"]["name"])
  if os.path.isdir(path):
    loaded = folder_lib.load_folder(path, task=meta["task"], num_classes=meta["num_classes"],
                                    value_range=(meta.get("layout") or {}).get("value_range"))
    splits, layout = loaded.splits, loaded.layout
  else:
    splits, flat = npz_io.read_npz_layout(path)
    npz_io.check_labels(path, splits, meta["task"], meta["num_classes"])
    layout = npz_io.layout(flat)
  dataset = Dataset(name=meta["name"], task=meta["task"], num_classes=meta["num_classes"],
                    label_names=meta["label_names"], splits=splits, source=path,
                    source_md5=manifest["files"]["data"]["md5"], layout=layout)
  return dataset, manifest


def read_split_labels(out_dir: str, split: str) -> np.ndarray:
  """(N, L) labels of one split of a protected dataset, without reading its images."""
  out_dir = os.path.expanduser(out_dir)
  manifest = _read_manifest(out_dir)
  path = os.path.join(out_dir, manifest["files"]["data"]["name"])
  task = manifest["dataset"]["task"]
  if os.path.isdir(path):
    rows = labels_csv.read_rows(path)
    labels, _ = labels_csv.label_indices(path, rows)
    assigned, _ = labels_csv.assign_splits(path, rows)
    return labels[[i for i, s in enumerate(assigned) if s == split]]
  with np.load(path, allow_pickle=False) as z:
    return tasks.label_matrix(z[f"{split}_labels"], task)


def _read_manifest(out_dir: str) -> dict:
  path = os.path.join(out_dir, MANIFEST_FILE)
  if not os.path.exists(path):
    raise ValueError(f"{out_dir}: no {MANIFEST_FILE}; not a finished protected dataset.")
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON: {e}") from e
  if manifest.get("format") != FORMAT:
    raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}.")
  return manifest


def read_noise(out_dir: str) -> dict[str, dict[str, np.ndarray]]:
  """{split: {'noise': int8 like the images, 'mask': bool (N, H, W)}} from noise.npz."""
  path = os.path.join(os.path.expanduser(out_dir), NOISE_FILE)
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError) as e:
    raise ValueError(f"{path}: cannot read the noise file: {e}") from e
  out = {}
  for key in arrays:
    if key.endswith("_noise"):
      s = key[: -len("_noise")]
      shape = tuple(int(d) for d in arrays[f"{s}_mask_shape"])
      bits = np.unpackbits(arrays[f"{s}_mask_bits"], count=int(np.prod(shape)))
      out[s] = {"noise": arrays[key], "mask": bits.astype(bool).reshape(shape)}
  return out


def _find_key(tree: Any, key: str) -> Any:
  """`tree[key]` at the top level, else the first match in nested dicts, else None."""
  if not isinstance(tree, dict):
    return None
  if key in tree:
    return tree[key]
  for value in tree.values():
    found = _find_key(value, key)
    if found is not None:
      return found
  return None


def _plain(obj: Any) -> Any:
  """A ConfigDict / mapping / numpy tree as JSON-able plain Python."""
  if hasattr(obj, "to_dict"):
    obj = obj.to_dict()
  if isinstance(obj, Mapping):
    return {str(k): _plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_plain(v) for v in obj]
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  return obj


def _version() -> str:
  try:
    return importlib.metadata.version("salm_jax")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"
