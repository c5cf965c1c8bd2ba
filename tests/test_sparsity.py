"""Sparsity as written: the uint8 file, not float δ, is what a data owner publishes."""
import numpy as np
import pytest

from configs import salm as salm_config
from salm_jax import data as data_lib
from salm_jax import protect
from salm_jax.noise import masks


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
  """Class-wise SALM on a class-shared, pretrained, strict 10% support (tiny phantom)."""
  cfg = salm_config.get_config("synthetic,tiny")
  cfg.noise.update(mode="class", mask_schedule="fixed", support="strict", mask_ratio=0.1,
                   init="sign", pretrain_steps=4, keep_pretrained=False, max_rounds=2)
  workdir = str(tmp_path_factory.mktemp("class_salm"))
  protect.protect(cfg, workdir, progress=False)
  dataset, _ = data_lib.read_protected(f"{workdir}/protected")
  return dataset, data_lib.read_noise(f"{workdir}/protected")["train"]


def _changed(noise: np.ndarray) -> np.ndarray:
  """bool (N, H, W): pixels whose written value differs in any channel."""
  noise = noise.reshape(noise.shape[:3] + (-1,))
  return (noise != 0).any(-1)


def test_written_support_never_exceeds_k_pixels(class_run):
  dataset, written = class_run
  h, w = dataset.image_size, dataset.image_size
  k = masks.num_kept(0.1, h * w)
  per_image = _changed(written["noise"]).sum((1, 2))
  assert per_image.max() <= k and per_image.max() > 0
  assert np.abs(written["noise"]).max() <= 8  # round(255 · 8/255)


def test_written_support_is_shared_within_a_class(class_run):
  dataset, written = class_run
  labels = dataset.splits["train"].labels[:, 0]
  for c in np.unique(labels):
    mask = written["mask"][labels == c]
    assert (mask == mask[0]).all()
    assert not (_changed(written["noise"])[labels == c] & ~mask[0]).any()


def test_real_data_default_is_a_sparse_texture_and_the_methods_keep_their_base():
  from configs import em, flat, salm_class  # pylint: disable=g-import-not-at-top
  for arg in ("breastmnist", "pneumoniamnist,full"):
    noise = salm_config.get_config(arg).noise
    assert noise.method == "lattice" and noise.lattice.pattern == "onesided"
    # PneumoniaMNIST's texture goes on its largest class (configs/salm.py says why).
    assert noise.lattice.bare == "busiest"  # the texture on the class with less fine structure
    assert noise.lattice.min_ssim == 0.95  # the SSIM floor, on every written image
    assert (noise.lattice.dot / noise.lattice.period) ** 2 <= noise.mask_ratio <= 0.1
    # PSNR on a changed image, where no dot is clipped: the 35 dB floor.
    assert -20 * np.log10(noise.epsilon) - 10 * np.log10(noise.mask_ratio) >= 35.0
    cls = salm_class.get_config(arg).noise
    assert (cls.method, cls.mode, cls.mask_schedule, cls.support) == (
        "salm", "class", "fixed", "strict")
    assert cls.mask_ratio <= 0.1 and cls.epsilon == 8 / 255
    assert flat.get_config(arg).noise.epsilon == 8 / 255  # not the default's 18/255
  dense = em.get_config("breastmnist").noise
  assert (dense.mode, dense.mask_ratio, dense.init) == ("sample", 1.0, "uniform")
  assert salm_config.get_config("synthetic").noise.mode == "sample"  # the README's phantom job
  assert salm_config.get_config("synthetic").noise.method == "salm"
