"""salm_jax's copy of MedMNIST's INFO: complete, equal to medmnist's, and true of the files."""
import pytest

from salm_jax.data import download
from salm_jax.data import info

FLAGS_2D = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist",
            "retinamnist", "breastmnist", "bloodmnist", "tissuemnist", "organamnist",
            "organcmnist", "organsmnist")


def test_all_twelve_2d_datasets_at_four_sizes():
  assert info.FLAGS == FLAGS_2D
  for flag in FLAGS_2D:
    for size in info.SIZES:
      assert info.url(flag, size).startswith("https://")
      assert info.file_name(flag, size) in info.url(flag, size)
      assert len(info.md5(flag, size)) == 32
  assert info.file_name("breastmnist", 28) == "breastmnist.npz"
  assert info.file_name("breastmnist", 64) == "breastmnist_64.npz"
  assert info.INFO["chestmnist"]["task"] == "multi-label, binary-class"
  assert info.num_classes("chestmnist") == 14
  assert info.INFO["retinamnist"]["task"] == "ordinal-regression"


def test_unknown_flag_and_size_are_clear_errors():
  with pytest.raises(ValueError, match="nosuchmnist"):
    info.file_name("nosuchmnist")
  with pytest.raises(ValueError, match="size"):
    info.file_name("breastmnist", 32)


def test_copy_matches_medmnist_info():
  medmnist_info = pytest.importorskip("medmnist.info")
  for flag in FLAGS_2D:
    assert info.INFO[flag] == medmnist_info.INFO[flag], flag


@pytest.mark.parametrize("flag,size", [("breastmnist", 28), ("breastmnist", 64),
                                       ("pneumoniamnist", 28)])
def test_shared_files_match_info_md5(medmnist_dir, flag, size):
  path = medmnist_dir / info.file_name(flag, size)
  assert download.md5_file(str(path)) == info.md5(flag, size)
