"""A TFDS builder for MedMNIST 2D that needs no TensorFlow.

For users whose input pipelines live in TFDS, and for multi-host runs that
read one prepared copy from shared storage with `tfds.data_source` (random
access, array_record files). It reads the very same npz files as the core
loader (`salm_jax.data.npz_io`, with the same checks): from a manual folder
if the file is there, else from MedMNIST's official URL through the TFDS
download manager, MD5-checked against `salm_jax.data.info`.

TensorFlow is never imported: images are PNG-encoded with PIL (lossless, so
they decode to the npz's exact pixels), examples are written as array_record,
and `tfds.data_source` decodes them with numpy. The core of salm_jax never
imports this module; only TFDS users do, so `tensorflow-datasets` stays an
optional extra.

    builder = MedMNIST(config="breastmnist_28", data_dir=..., file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir="~/.medmnist"))
    source = tfds.data_source("medmnist/breastmnist_28", data_dir=...)
"""
from __future__ import annotations

import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from salm_jax import tasks
from salm_jax.data import download as download_lib
from salm_jax.data import info as info_lib
from salm_jax.data import npz_io

_CITATION = """\
@article{medmnistv2,
  title={MedMNIST v2-A large-scale lightweight benchmark for 2D and 3D biomedical image classification},
  author={Yang, Jiancheng and Shi, Rui and Wei, Donglai and Liu, Zequan and Zhao, Lin and Ke, Bilian and Pfister, Hanspeter and Ni, Bingbing},
  journal={Scientific Data}, volume={10}, number={1}, pages={41}, year={2023}}
@inproceedings{medmnistv1,
  title={MedMNIST Classification Decathlon: A Lightweight AutoML Benchmark for Medical Image Analysis},
  author={Yang, Jiancheng and Shi, Rui and Ni, Bingbing},
  booktitle={IEEE 18th International Symposium on Biomedical Imaging (ISBI)}, pages={191--195}, year={2021}}
"""


class MedMNISTConfig(tfds.core.BuilderConfig):
  """One MedMNIST dataset at one image size, e.g. 'breastmnist_28'."""

  def __init__(self, *, flag: str, size: int, **kwargs):
    super().__init__(name=f"{flag}_{size}", description=f"{flag} at {size}x{size}", **kwargs)
    self.flag = flag
    self.size = size


class MedMNIST(tfds.core.GeneratorBasedBuilder):
  """MedMNIST v3 2D: image (H, W, C) uint8, label (L,) int64, index (row in the npz)."""

  name = "medmnist"
  VERSION = tfds.core.Version("3.0.2")
  RELEASE_NOTES = {"3.0.2": "MedMNIST v3 files (medmnist 3.0.2 INFO)."}
  BUILDER_CONFIGS = [MedMNISTConfig(flag=f, size=s) for f in info_lib.FLAGS
                     for s in info_lib.SIZES]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Optional: put MedMNIST's npz files (e.g. breastmnist.npz, breastmnist_64.npz) in "
      "the manual folder (for example ~/.medmnist); missing ones are downloaded.")

  def _info(self) -> tfds.core.DatasetInfo:
    meta = info_lib.info_for(self.builder_config.flag)
    size, channels = self.builder_config.size, meta["n_channels"]
    label_cols = (len(meta["label"]) if meta["task"] == tasks.MULTI_LABEL else 1)
    return self.dataset_info_from_configs(
        description=meta["description"],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, channels), dtype=np.uint8,
                                         encoding_format="png"),
            "label": tfds.features.Tensor(shape=(label_cols,), dtype=np.int64),
            "index": tfds.features.Scalar(dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
        homepage=info_lib.HOMEPAGE,
        citation=_CITATION,
        license=meta["license"],
        disable_shuffling=True,  # Example i of a split is row i of the npz.
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    path = self._npz_path(dl_manager)
    splits = npz_io.read_npz(path)
    meta = info_lib.info_for(self.builder_config.flag)
    npz_io.check_labels(path, splits, meta["task"], len(meta["label"]))
    return {name: self._generate_examples(split) for name, split in splits.items()}

  def _npz_path(self, dl_manager) -> str:
    """The npz from the manual folder if present there, else downloaded."""
    flag, size = self.builder_config.flag, self.builder_config.size
    name, want = info_lib.file_name(flag, size), info_lib.md5(flag, size)
    manual = getattr(dl_manager, "_manual_dir", None)
    if manual is not None and os.path.exists(os.path.join(os.fspath(manual), name)):
      path = os.path.join(os.fspath(manual), name)
    else:
      path = os.fspath(dl_manager.download(info_lib.url(flag, size)))
    got = download_lib.md5_file(path)
    if got != want:
      raise ValueError(f"{path}: MD5 {got} does not match MedMNIST's {want} for {name}.")
    return path

  def _generate_examples(self, split):
    images = split.images if split.images.ndim == 4 else split.images[..., None]
    for i in range(len(images)):
      yield i, {"image": _png(images[i]), "label": split.labels[i].astype(np.int64),
                "index": i}


def _png(image: np.ndarray) -> bytes:
  """Lossless PNG bytes of one (H, W, C) uint8 image, made with PIL (no TensorFlow)."""
  buf = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
  return buf.getvalue()
