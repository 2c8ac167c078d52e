"""idx files (MNIST format) and the Fashion-MNIST / MNIST datasets built on them."""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from archzoo.data import idx
from archzoo.data.idx import IDX_IMAGES, IDX_LABELS, fashion_mnist, mnist, read_idx
from archzoo.data.splits import epoch_generator, holdout
from archzoo.errors import DataError, UserError
from archzoo.registry import create_dataset

CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(arr: np.ndarray, dtype: str = "u1") -> bytes:
    """The idx encoding of ``arr`` written by hand: magic, big-endian sizes, big-endian values."""
    head = bytes([0, 0, CODES[dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(dtype).tobytes()


def write(path: Path, data: bytes, gz: bool | None = None) -> Path:
    gz = path.name.endswith(".gz") if gz is None else gz
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_idx_dir(folder: Path, n_train: int = 40, n_test: int = 12, gz: bool = True, seed: int = 0):
    """A tiny MNIST-format dataset: the four standard files with random 28×28 images."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train": (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), np.arange(n_train, dtype=np.uint8) % 10),
        "test": (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8)),
    }
    suffix = ".gz" if gz else ""
    for split, (img_name, lab_name) in idx.IDX_FILES.items():
        write(folder / f"{img_name}{suffix}", idx_bytes(arrays[split][0]))
        write(folder / f"{lab_name}{suffix}", idx_bytes(arrays[split][1]))
    return arrays


# --- read_idx -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_images_and_labels(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9, 2], dtype=np.uint8)
    ip = write(tmp_path / ("im.gz" if gz else "im"), idx_bytes(images))
    lp = write(tmp_path / ("lab.gz" if gz else "lab"), idx_bytes(labels))
    got = read_idx(ip, expect=IDX_IMAGES)
    assert got.dtype == np.uint8 and got.shape == (7, 28, 28)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(lp, expect=IDX_LABELS), labels)
    assert got.flags.writeable


@pytest.mark.parametrize("dtype", list(CODES))
def test_every_idx_type_is_big_endian_and_returned_native(tmp_path, dtype):
    sign = 1 if dtype == "u1" else -1
    arr = np.arange(24).reshape(2, 3, 4) * 3 * sign
    if dtype[-2] == "f":
        arr = arr / 7.0
    got = read_idx(write(tmp_path / "a", idx_bytes(arr, dtype)))
    assert got.dtype.isnative and got.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(got, arr.astype(dtype))


def test_gzip_detected_by_content_whatever_the_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    p = write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels), gz=True)
    np.testing.assert_array_equal(read_idx(p), labels)


@pytest.mark.parametrize(
    "head",
    [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"PK\x03\x04"],
    ids=["nonzero-lead", "unknown-type", "zero-dims", "zip"],
)
def test_wrong_magic_names_the_file(tmp_path, head):
    p = write(tmp_path / "bad-idx1-ubyte", head + struct.pack(">I", 3) + b"abc")
    with pytest.raises(DataError, match="magic number") as err:
        read_idx(p)
    assert str(p) in str(err.value)


def test_unexpected_magic_names_the_file(tmp_path):
    p = write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="0x00000803 was expected") as err:
        read_idx(p, expect=IDX_IMAGES)
    assert str(p) in str(err.value)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_data_names_the_file(tmp_path, gz):
    data = idx_bytes(np.zeros((5, 28, 28), np.uint8))[:-100]
    p = write(tmp_path / ("imgs.gz" if gz else "imgs"), data)
    with pytest.raises(DataError, match="truncated") as err:
        read_idx(p)
    assert str(p) in str(err.value) and "3936 bytes" in str(err.value)


def test_trailing_bytes_and_truncated_header(tmp_path):
    p = write(tmp_path / "long", idx_bytes(np.zeros(4, np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="longer than its header"):
        read_idx(p)
    p = write(tmp_path / "short", b"\x00\x00\x08\x03" + b"\x00" * 6)
    with pytest.raises(DataError, match="header") as err:
        read_idx(p)
    assert str(p) in str(err.value)
    p = write(tmp_path / "tiny", b"\x00\x00")
    with pytest.raises(DataError, match="too short") as err:
        read_idx(p)
    assert str(p) in str(err.value)


def test_truncated_gzip_names_the_file(tmp_path):
    raw = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)))
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as err:
        read_idx(p)
    assert str(p) in str(err.value)


def test_corrupt_gzip_names_the_file(tmp_path):
    raw = bytearray(gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8))))
    for i in range(40, 60):  # damage the deflate stream after the gzip header
        raw[i] ^= 0xA5
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt or truncated gzip") as err:
        read_idx(p)
    assert str(p) in str(err.value)


def test_gz_name_without_gzip_content_and_missing_file(tmp_path):
    p = write(tmp_path / "x.gz", b"not gzip at all", gz=False)
    with pytest.raises(DataError, match="not a gzip file") as err:
        read_idx(p)
    assert str(p) in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")


# --- the datasets -----------------------------------------------------------------


def test_fashion_mnist_splits_shapes_and_values(tmp_path):
    arrays = make_idx_dir(tmp_path / "fashion-mnist")
    b = fashion_mnist(data_dir=tmp_path, val_fraction=0.25, seed=3, normalize="unit")
    assert (len(b.train), len(b.val), len(b.test)) == (30, 10, 12)
    x, y = b.train.tensors
    assert x.shape == (30, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    # train + val are exactly the train file, split by holdout(n, fraction, seed)
    tr, va = holdout(40, 0.25, 3)
    images, labels = arrays["train"]
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images[tr.numpy()]).float() / 255)
    assert torch.equal(y, torch.from_numpy(labels[tr.numpy()]).long())
    assert torch.equal(b.val.tensors[1], torch.from_numpy(labels[va.numpy()]).long())
    torch.testing.assert_close(b.test.tensors[0][:, 0], torch.from_numpy(arrays["test"][0]).float() / 255)
    assert b.info["mean"] == [0.0] and b.info["std"] == [1.0] and b.info["normalize"] == "unit"


def test_normalize_modes(tmp_path):
    arrays = make_idx_dir(tmp_path / "fashion-mnist")
    raw = torch.from_numpy(arrays["test"][0]).float()[:, None]
    std = fashion_mnist(data_dir=tmp_path).test.tensors[0]
    torch.testing.assert_close(std, (raw / 255 - 0.2860) / 0.3530)
    sym = fashion_mnist(data_dir=tmp_path, normalize="symmetric")
    torch.testing.assert_close(sym.test.tensors[0], raw / 127.5 - 1)
    assert sym.info["mean"] == [0.5] and sym.info["std"] == [0.5]
    assert mnist_mean_std(tmp_path) == ([0.1307], [0.3081])


def mnist_mean_std(tmp_path):
    make_idx_dir(tmp_path / "mnist")
    info = mnist(data_dir=tmp_path).info
    return info["mean"], info["std"]


def test_info(tmp_path):
    make_idx_dir(tmp_path / "fashion-mnist")
    info = fashion_mnist(data_dir=tmp_path).info
    assert info["num_classes"] == 10 and info["in_channels"] == 1 and info["image_size"] == 28
    assert info["classes"][0] == "T-shirt/top" and info["classes"][9] == "Ankle boot" and len(info["classes"]) == 10
    assert info["mean"] == [0.2860] and info["std"] == [0.3530]
    assert info["normalize"] == "standard" and info["kind"] == "image"
    assert info["source"] == str(tmp_path / "fashion-mnist")


def test_limit_takes_the_first_images(tmp_path):
    arrays = make_idx_dir(tmp_path / "fashion-mnist", n_train=40, n_test=12)
    b = fashion_mnist(data_dir=tmp_path, limit=20, val_fraction=0.1, normalize="unit")
    assert (len(b.train), len(b.val), len(b.test)) == (18, 2, 12)
    assert set(torch.cat([b.train.tensors[1], b.val.tensors[1]]).tolist()) == set(arrays["train"][1][:20].tolist())
    b = fashion_mnist(data_dir=tmp_path, limit=5)
    assert len(b.test) == 5


def test_augment_on_train_only_with_black_padding(tmp_path):
    make_idx_dir(tmp_path / "fashion-mnist")
    b = fashion_mnist(data_dir=tmp_path, augment={"crop_padding": 4, "flip": True})
    assert b.train.augment is not None and b.val.augment is None and b.test.augment is None
    white = torch.full((64, 1, 28, 28), (1 - 0.2860) / 0.3530)
    out = b.train.augment(white, epoch_generator(0, 0, 1))
    black = (0 - 0.2860) / 0.3530
    vals = out.unique()
    assert len(vals) == 2  # some images were shifted: their padding shows
    torch.testing.assert_close(vals.min(), torch.tensor(black))
    assert fashion_mnist(data_dir=tmp_path, augment={}).train.augment is None
    with pytest.raises(UserError, match="Unknown augmentation"):
        fashion_mnist(data_dir=tmp_path, augment={"spin": 1})


def test_mnist_reads_torchvision_layout_uncompressed(tmp_path):
    arrays = make_idx_dir(tmp_path / "MNIST" / "raw", gz=False)
    b = create_dataset("mnist", data_dir=tmp_path, val_fraction=0.0, normalize="unit")
    assert len(b.train) == 40 and len(b.val) == 0
    assert b.info["classes"] == [str(d) for d in range(10)]
    torch.testing.assert_close(b.test.tensors[0][:, 0], torch.from_numpy(arrays["test"][0]).float() / 255)


def test_fashion_found_where_debian_installs_it(tmp_path, monkeypatch):
    debian = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    make_idx_dir(debian)
    monkeypatch.setattr(idx, "FASHION_MNIST", dataclasses.replace(idx.FASHION_MNIST, system_dirs=(debian,)))
    b = fashion_mnist(data_dir=tmp_path / "empty-root")
    assert b.info["source"] == str(debian) and len(b.test) == 12


def test_missing_fashion_says_where_and_how(tmp_path, monkeypatch):
    debian = tmp_path / "no-debian-here"
    monkeypatch.setattr(idx, "FASHION_MNIST", dataclasses.replace(idx.FASHION_MNIST, system_dirs=(debian,)))
    with pytest.raises(DataError) as err:
        fashion_mnist(data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "fashion-mnist") in msg and str(debian) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "archzoo data download fashion_mnist" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg


def test_inconsistent_files(tmp_path):
    folder = tmp_path / "fashion-mnist"
    make_idx_dir(folder)
    write(folder / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(39, np.uint8)))
    with pytest.raises(DataError, match="40 images but .* 39 labels"):
        fashion_mnist(data_dir=tmp_path)
    write(folder / "train-labels-idx1-ubyte.gz", idx_bytes(np.full(40, 10, np.uint8)))
    with pytest.raises(DataError, match="label 10") as err:
        fashion_mnist(data_dir=tmp_path)
    assert "train-labels-idx1-ubyte.gz" in str(err.value)
    make_idx_dir(folder)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is a corrupt"):
        fashion_mnist(data_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs", [{"normalize": "zscore"}, {"val_fraction": 1.0}, {"val_fraction": -0.1}, {"limit": 0}, {"limit": 2.5}]
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(UserError):
        fashion_mnist(data_dir=tmp_path, **kwargs)


def _real_fashion_dir() -> Path:
    root = os.environ.get("ARCHZOO_DATA")
    if not root:
        pytest.skip("ARCHZOO_DATA is not set, so the real Fashion-MNIST files cannot be found")
    folder = Path(root) / "fashion-mnist"
    names = [f"{s}.gz" for pair in idx.IDX_FILES.values() for s in pair]
    if not all((folder / n).is_file() for n in names):
        pytest.skip(f"the Fashion-MNIST idx files are not all in {folder}")
    return folder


def test_real_fashion_mnist():
    folder = _real_fashion_dir()
    t0 = time.perf_counter()
    b = fashion_mnist(data_dir=folder.parent, val_fraction=0.1, normalize="unit")
    seconds = time.perf_counter() - t0
    assert b.info["source"] == str(folder)
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert b.train.tensors[0].shape == (54000, 1, 28, 28)
    assert b.test.tensors[0].shape == (10000, 1, 28, 28)
    y_all = torch.cat([b.train.tensors[1], b.val.tensors[1]])
    assert y_all.min() == 0 and y_all.max() == 9
    assert torch.bincount(y_all).tolist() == [6000] * 10  # Fashion-MNIST is balanced
    assert torch.bincount(b.test.tensors[1]).tolist() == [1000] * 10
    x_all = torch.cat([b.train.tensors[0], b.val.tensors[0]])
    assert abs(x_all.mean().item() - idx.FASHION_MNIST.mean) < 5e-4  # the "standard" constants are right
    assert abs(x_all.std().item() - idx.FASHION_MNIST.std) < 5e-4
    print(f"read and normalised 70,000 Fashion-MNIST images in {seconds:.2f}s")
