"""Reading an npz member by rows and writing one in chunks give what numpy gives."""
import numpy as np
import pytest

from salm_jax import protect_streamed
from salm_jax.data import npz_stream


@pytest.fixture
def npz(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {"train_images": rng.integers(0, 256, (37, 5, 6), np.uint8),
            "rgb": rng.integers(0, 256, (11, 4, 4, 3), np.uint8)}
  path = tmp_path / "a.npz"
  np.savez_compressed(path, **arrays)
  return str(path), arrays


def test_rows_read_only_what_is_asked_in_any_order(npz):
  path, arrays = npz
  rows = npz_stream.NpzRows(path, "train_images")
  assert rows.shape == (37, 5, 6) and rows.dtype == np.uint8 and len(rows) == 37
  idx = np.array([36, 0, 5, 6, 20])
  np.testing.assert_array_equal(rows[idx], arrays["train_images"][idx])
  np.testing.assert_array_equal(rows[2:9], arrays["train_images"][2:9])
  chunks = list(rows.chunks(4))
  assert [s for s, _ in chunks] == list(range(0, 37, 4))
  np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), arrays["train_images"])
  nhwc = rows.nhwc()
  assert nhwc.shape == (37, 5, 6, 1)
  np.testing.assert_array_equal(nhwc[idx][..., 0], arrays["train_images"][idx])
  np.testing.assert_array_equal(np.asarray(npz_stream.NpzRows(path, "rgb")), arrays["rgb"])


def test_a_member_written_in_chunks_loads_as_the_whole_array(tmp_path, npz):
  _, arrays = npz
  out = tmp_path / "b.npz"
  with open(out, "wb") as f:
    writer = npz_stream.NpzWriter(f)
    member = writer.member("train_images", (37, 5, 6), np.uint8)
    for start in range(0, 37, 10):
      member.write(arrays["train_images"][start:start + 10])
    member.close()
    writer.add("rgb", arrays["rgb"])
    writer.close()
  with np.load(out) as z:
    np.testing.assert_array_equal(z["train_images"], arrays["train_images"])
    np.testing.assert_array_equal(z["rgb"], arrays["rgb"])


def test_a_member_refuses_the_wrong_number_of_rows(tmp_path):
  with open(tmp_path / "c.npz", "wb") as f:
    writer = npz_stream.NpzWriter(f)
    member = writer.member("x", (4, 2), np.uint8)
    member.write(np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match="4 rows got 3"):
      member.close()
    writer.close()


def test_noise_file_packs_mask_bits_across_windows_as_one_packbits(tmp_path):
  rng = np.random.default_rng(1)
  masks = rng.random((13, 3, 3)) < 0.3   # 9 bits an image: windows end mid-byte
  diff = rng.integers(-8, 9, (13, 3, 3, 1)).astype(np.int16)
  noise = protect_streamed._NoiseFile(str(tmp_path), (13, 3, 3))  # pylint: disable=protected-access
  for start in (0, 5, 6, 11):
    stop = {0: 5, 5: 6, 6: 11, 11: 13}[start]
    noise.write(diff[start:stop], masks[start:stop])
  noise.close()
  with np.load(tmp_path / "noise.npz") as z:
    np.testing.assert_array_equal(z["train_mask_bits"], np.packbits(masks.ravel()))
    np.testing.assert_array_equal(z["train_mask_shape"], [13, 3, 3])
    np.testing.assert_array_equal(z["train_noise"], diff[..., 0].astype(np.int8))
