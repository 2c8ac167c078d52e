"""Verified downloads, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import socket
import struct
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from archzoo.data import download as dl
from archzoo.data.cifar import CIFAR10_SUBDIRS
from archzoo.data.download import DOWNLOADS, download_dataset, download_file
from archzoo.data.idx import FASHION_MNIST, IDX_FILES, MNIST, fashion_mnist
from archzoo.errors import DataError, UserError


class _Handler(SimpleHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path == "/short":  # promises 100 bytes, sends 10, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A threaded static file server for ``tmp_path/www`` on a free local port."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    hits: list[str] = []
    handler = functools.partial(type("H", (_Handler,), {"hits": hits}), directory=str(www))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}/", www=www, hits=hits)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_download_verifies_md5_and_sha256(server, tmp_path):
    body = b"archzoo" * 100_000
    (server.www / "f.bin").write_bytes(body)
    dest = tmp_path / "out" / "sub" / "f.bin"
    got = download_file(
        server.url + "f.bin", dest, sha256=hashlib.sha256(body).hexdigest(), md5=hashlib.md5(body).hexdigest().upper()
    )
    assert got == dest and dest.read_bytes() == body
    assert _leftovers(dest.parent) == []


def test_checksum_mismatch_discards_the_download(server, tmp_path):
    (server.www / "f.bin").write_bytes(b"new content")
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old content")
    with pytest.raises(DataError, match="md5 .* where 0+ was expected; it was discarded") as err:
        download_file(server.url + "f.bin", dest, md5="0" * 32)
    assert server.url + "f.bin" in str(err.value)
    assert dest.read_bytes() == b"old content"  # the rename never happened
    assert _leftovers(tmp_path) == []
    with pytest.raises(DataError, match="sha256"):
        download_file(server.url + "f.bin", tmp_path / "g.bin", sha256="ab" * 32)
    assert not (tmp_path / "g.bin").exists()


def test_http_404(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404") as err:
        download_file(server.url + "missing.gz", tmp_path / "missing.gz")
    assert str(err.value).startswith(f"Could not download {server.url}missing.gz")
    assert not (tmp_path / "missing.gz").exists() and _leftovers(tmp_path) == []


def test_short_body(server, tmp_path):
    with pytest.raises(DataError, match="ended after 10 of 100 bytes"):
        download_file(server.url + "short", tmp_path / "s")
    assert list(tmp_path.iterdir()) == [server.www]


def test_connection_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as s:  # a port that nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=f"Could not download http://127.0.0.1:{port}/x"):
        download_file(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout=5)
    assert list(tmp_path.iterdir()) == []


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def test_download_dataset_then_load(server, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    content = {
        "train-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)),
        "train-labels-idx1-ubyte.gz": _idx(np.arange(20, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte.gz": _idx(rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte.gz": _idx(np.arange(5, dtype=np.uint8)),
    }
    files = []
    for name, raw in content.items():
        data = gzip.compress(raw)
        (server.www / name).write_bytes(data)
        files.append((name, hashlib.md5(data).hexdigest()))
    spec = dataclasses.replace(DOWNLOADS["fashion_mnist"], files=tuple(files))
    monkeypatch.setitem(DOWNLOADS, "fashion_mnist", spec)
    root = tmp_path / "root"
    folder = download_dataset("fashion_mnist", data_dir=root, base_url=server.url.rstrip("/"))
    assert folder == root / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(content)
    b = fashion_mnist(data_dir=root)
    assert (len(b.train), len(b.val), len(b.test)) == (18, 2, 5)
    # a second run keeps verified files and fetches only a damaged one again
    n = len(server.hits)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    download_dataset("fashion_mnist", data_dir=root, base_url=server.url)
    assert server.hits[n:] == ["/t10k-labels-idx1-ubyte.gz"]


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _serve_archive(server, monkeypatch, members: dict[str, bytes]) -> None:
    data = _tar_gz(members)
    (server.www / "cifar-10-python.tar.gz").write_bytes(data)
    spec = dataclasses.replace(DOWNLOADS["cifar10"], files=(("cifar-10-python.tar.gz", hashlib.md5(data).hexdigest()),))
    monkeypatch.setitem(DOWNLOADS, "cifar10", spec)


def test_archive_is_unpacked_and_removed(server, tmp_path, monkeypatch):
    _serve_archive(server, monkeypatch, {p: b"batch" for p in DOWNLOADS["cifar10"].provides})
    folder = download_dataset("cifar10", data_dir=tmp_path, base_url=server.url)
    assert folder == tmp_path / "cifar10"
    assert (folder / "cifar-10-batches-py" / "test_batch").read_bytes() == b"batch"
    assert not (folder / "cifar-10-python.tar.gz").exists()
    n = len(server.hits)
    download_dataset("cifar10", data_dir=tmp_path, base_url=server.url)
    assert len(server.hits) == n  # already unpacked: nothing fetched


def test_archive_escaping_its_folder_is_refused(server, tmp_path, monkeypatch):
    _serve_archive(server, monkeypatch, {"../evil.txt": b"owned"})
    with pytest.raises(DataError, match="Could not unpack"):
        download_dataset("cifar10", data_dir=tmp_path / "root", base_url=server.url)
    assert not (tmp_path / "evil.txt").exists()


def test_unknown_dataset():
    with pytest.raises(UserError, match="downloadable datasets: cifar10, fashion_mnist, mnist"):
        download_dataset("imagenet")


def test_table_matches_loaders_and_upstream():
    assert DOWNLOADS["fashion_mnist"].dir == FASHION_MNIST.subdirs[0]
    assert DOWNLOADS["mnist"].dir == MNIST.subdirs[0]
    assert f"{DOWNLOADS['cifar10'].dir}/cifar-10-batches-py" == CIFAR10_SUBDIRS[0]
    for key in ("fashion_mnist", "mnist"):
        names = [n for n, _ in DOWNLOADS[key].files]
        assert names == [f"{s}.gz" for pair in IDX_FILES.values() for s in pair]
    for spec in DOWNLOADS.values():
        for _, md5 in spec.files:
            assert len(md5) == 32 and int(md5, 16) >= 0
    # the table holds the upstream md5s, not those of Debian's re-packed files
    md5s = dict(DOWNLOADS["fashion_mnist"].files)
    assert md5s["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert md5s["train-images-idx3-ubyte.gz"] != "cf8536b0aa1a6ac5fa3f23001093305c"


def test_file_digest(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc" * (dl.CHUNK // 2))
    assert dl.file_digest(p, "sha256") == hashlib.sha256(p.read_bytes()).hexdigest()
