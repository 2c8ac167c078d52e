"""Downloads of the file-based datasets, verified against published checksums.

Only for machines with a network; everything else in archzoo reads files
already under the data root. A download streams into a temporary file next to
its destination, checks the digest, and renames the file into place, so an
interrupted or corrupt download never leaves a file that looks complete.

The md5 sums are of the upstream ``.gz`` files: Fashion-MNIST's from its
README (zalandoresearch/fashion-mnist), MNIST's and CIFAR-10's as published
with the torchvision and CIFAR-10 downloads. Debian's ``dataset-fashion-mnist``
re-packs the gzip streams, so its ``.gz`` files have other sums (their
decompressed contents are the same).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from archzoo.data.root import PathLike, data_root
from archzoo.errors import DataError, UserError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Download:
    """The files of one dataset.

    Args:
        dir: the folder below the data root that the files go to; the one the
            dataset's loader looks in first.
        base_url: the folder URL the file names are appended to.
        files: ``(file name, md5)`` pairs.
        extract: unpack each file (a tar archive) into ``dir`` and delete it.
        provides: files (relative to ``dir``) whose presence means the dataset
            is already there, for archives that are deleted after unpacking.
    """

    dir: str
    base_url: str
    files: tuple[tuple[str, str], ...]
    extract: bool = False
    provides: tuple[str, ...] = ()


DOWNLOADS: dict[str, Download] = {
    "fashion_mnist": Download(
        dir="fashion-mnist",
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files=(
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
    "mnist": Download(
        dir="mnist",
        base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        files=(
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "cifar10": Download(
        dir="cifar10",
        base_url="https://www.cs.toronto.edu/~kriz/",
        files=(("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        extract=True,
        provides=tuple(
            f"cifar-10-batches-py/{n}"
            for n in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
            + ("test_batch", "batches.meta")
        ),
    ),
}


def file_digest(path: PathLike, algorithm: str) -> str:
    """The hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    url: str,
    dest: PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    *,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` to ``dest``, verifying the given digests, atomically.

    The body streams into a hidden temporary file in ``dest``'s folder; only a
    complete body with matching digests is renamed to ``dest``.

    Raises:
        DataError: a network or HTTP error, a short body, or a digest mismatch,
            in one sentence naming the URL.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = {k: v.lower() for k, v in (("sha256", sha256), ("md5", md5)) if v}
    hashes = {k: hashlib.new(k) for k in expected}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    got = 0
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        got += len(chunk)
                        for h in hashes.values():
                            h.update(chunk)
            except urllib.error.HTTPError as e:
                e.close()  # the error carries the open response
                raise DataError(f"Could not download {url}: HTTP {e.code} {e.reason}.") from None
            except urllib.error.URLError as e:
                raise DataError(f"Could not download {url}: {e.reason}.") from None
            except (http.client.HTTPException, OSError) as e:
                raise DataError(f"Could not download {url}: {e or type(e).__name__}.") from None
        if length is not None and length.isdigit() and got != int(length):
            raise DataError(f"Could not download {url}: the body ended after {got} of {length} bytes.")
        for name, want in expected.items():
            have = hashes[name].hexdigest()
            if have != want:
                raise DataError(f"The download of {url} has {name} {have} where {want} was expected; it was discarded.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_dataset(name: str, data_dir: PathLike | None = None, base_url: str | None = None) -> Path:
    """Download a dataset's files into ``<data root>/<dir>/`` and return that folder.

    Files already there with the right md5 are kept; archives are unpacked
    (members outside the folder, links and devices are refused) and deleted.

    Args:
        name: a key of :data:`DOWNLOADS` (``fashion_mnist``, ``mnist``, ``cifar10``).
        data_dir: the data root (see :func:`archzoo.data.root.data_root`).
        base_url: a mirror to use instead of the upstream folder URL.
    """
    spec = DOWNLOADS.get(name)
    if spec is None:
        raise UserError(f"No download for '{name}'; downloadable datasets: {', '.join(sorted(DOWNLOADS))}.")
    target = data_root(data_dir) / spec.dir
    if spec.provides and all((target / p).is_file() for p in spec.provides):
        return target
    base = (base_url or spec.base_url).rstrip("/") + "/"
    for fname, md5 in spec.files:
        dest = target / fname
        if not (dest.is_file() and file_digest(dest, "md5") == md5):
            download_file(base + fname, dest, md5=md5)
        if spec.extract:
            try:
                with tarfile.open(dest) as tar:
                    tar.extractall(target, filter="data")
            except (tarfile.TarError, OSError) as e:
                raise DataError(f"Could not unpack {dest}: {e}.") from None
            dest.unlink()
    return target
