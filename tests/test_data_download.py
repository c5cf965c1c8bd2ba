"""`fetch` against a local HTTP server: good MD5, bad MD5, dropped connection."""
import contextlib
import hashlib
import http.server
import io
import os
import socket
import threading

import numpy as np
import pytest

from salm_jax.data import download
from salm_jax.data import info
from salm_jax.data import loading


def _tiny_medmnist_npz() -> bytes:
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in (("train", 12), ("val", 4), ("test", 6)):
    arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  return buf.getvalue()


BODY = _tiny_medmnist_npz()
GOOD_MD5 = hashlib.md5(BODY).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):

  def do_GET(self):  # noqa: N802 (http.server's name)
    self.send_response(200)
    self.send_header("Content-Length", str(len(BODY)))
    self.end_headers()
    if self.path.startswith("/drop"):
      self.wfile.write(BODY[:1000])  # Then close: the body is cut short.
      self.wfile.flush()
      self.close_connection = True
      return
    self.wfile.write(BODY)

  def log_message(self, *args):
    pass


@pytest.fixture(scope="module")
def server_url():
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()
  server.server_close()


def _leftovers(folder):
  with contextlib.suppress(FileNotFoundError):
    return sorted(os.listdir(folder))
  return []


def test_good_md5_writes_file(server_url, tmp_path):
  dest = tmp_path / "data" / "tiny.npz"
  got = download.fetch(f"{server_url}/tiny.npz", str(dest), GOOD_MD5, progress=False)
  assert got == str(dest)
  assert dest.read_bytes() == BODY
  assert _leftovers(dest.parent) == ["tiny.npz"]


def test_bad_md5_leaves_nothing(server_url, tmp_path):
  dest = tmp_path / "tiny.npz"
  with pytest.raises(download.DownloadError) as e:
    download.fetch(f"{server_url}/tiny.npz", str(dest), "0" * 32, progress=False)
  msg = str(e.value)
  assert "MD5 mismatch" in msg and "tiny.npz" in msg
  assert f"{server_url}/tiny.npz" in msg and str(tmp_path) in msg
  assert _leftovers(tmp_path) == []


def test_dropped_connection_leaves_nothing(server_url, tmp_path):
  dest = tmp_path / "tiny.npz"
  with pytest.raises(download.DownloadError) as e:
    download.fetch(f"{server_url}/drop/tiny.npz", str(dest), GOOD_MD5, progress=False,
                   timeout=5)
  assert "Could not download tiny.npz" in str(e.value)
  assert str(tmp_path) in str(e.value)
  assert _leftovers(tmp_path) == []


def test_no_server_is_a_clear_error(tmp_path):
  with socket_closed_port() as port:
    url = f"http://127.0.0.1:{port}/breastmnist.npz"
  with pytest.raises(download.DownloadError, match="put it in the folder"):
    download.fetch(url, str(tmp_path / "breastmnist.npz"), GOOD_MD5, progress=False,
                   timeout=5)
  assert _leftovers(tmp_path) == []


def test_load_dataset_downloads_a_missing_file(server_url, tmp_path, monkeypatch):
  monkeypatch.setitem(info.INFO["breastmnist"], "url", f"{server_url}/breastmnist.npz")
  monkeypatch.setitem(info.INFO["breastmnist"], "MD5", GOOD_MD5)
  ds = loading.load_dataset("breastmnist", data_dir=str(tmp_path))
  assert (tmp_path / "breastmnist.npz").read_bytes() == BODY
  assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [12, 4, 6]
  assert ds.source_md5 == GOOD_MD5


def test_missing_file_without_download_says_where_to_put_it(tmp_path):
  with pytest.raises(ValueError) as e:
    loading.load_dataset("breastmnist", data_dir=str(tmp_path), download=False)
  assert "breastmnist.npz" in str(e.value) and str(tmp_path) in str(e.value)
  assert info.url("breastmnist") in str(e.value)


@contextlib.contextmanager
def socket_closed_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  yield port
