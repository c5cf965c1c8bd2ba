"""salm_jax's data layer: MedMNIST, the offline phantom, custom npz, image/DICOM folders,
protected output.

`load_dataset(name, ...)` is the one way in; see `loading.py`. Protected
datasets are written and read back by `protected.py`; the optional TFDS
builder (`tfds_medmnist.py`) is imported only by those who use TFDS.
"""
from salm_jax.data.dataset import SPLITS, Dataset, Split, as_float, as_nhwc, as_uint8_like
from salm_jax.data.download import DownloadError, fetch
from salm_jax.data.folder import load_folder
from salm_jax.data.loading import (DEFAULT_DATA_DIR, default_config, default_phantom_config,
                                   load_custom, load_dataset, load_from_config,
                                   load_medmnist)
from salm_jax.data.phantom import make_phantom
from salm_jax.data.protected import quantize, read_noise, read_protected, write_protected

__all__ = [
    "SPLITS", "Dataset", "Split", "as_float", "as_nhwc", "as_uint8_like", "DownloadError", "fetch",
    "DEFAULT_DATA_DIR", "default_config", "default_phantom_config", "load_custom",
    "load_dataset", "load_folder", "load_from_config", "load_medmnist", "make_phantom", "quantize",
    "read_noise", "read_protected", "write_protected",
]
