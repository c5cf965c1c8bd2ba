"""The TFDS builder prepares BreastMNIST from the shared file, without TensorFlow."""
import sys

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")


def test_prepare_and_read_breastmnist(medmnist_dir, tmp_path):
  from salm_jax.data import tfds_medmnist
  builder = tfds_medmnist.MedMNIST(config="breastmnist_28", data_dir=str(tmp_path),
                                   file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(medmnist_dir)))
  source = tfds.data_source("medmnist/breastmnist_28", data_dir=str(tmp_path))
  assert {k: len(v) for k, v in source.items()} == {"train": 546, "val": 78, "test": 156}
  with np.load(medmnist_dir / "breastmnist.npz") as z:
    for split, i in (("train", 0), ("train", 400), ("test", 155)):
      example = source[split][i]
      assert int(example["index"]) == i
      np.testing.assert_array_equal(example["image"][..., 0], z[f"{split}_images"][i])
      np.testing.assert_array_equal(example["label"], z[f"{split}_labels"][i])
  assert "tensorflow" not in sys.modules
