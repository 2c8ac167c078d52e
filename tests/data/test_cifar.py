"""CIFAR-10 python batches, read through the restricted unpickler."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from archzoo.data.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    TRAIN_BATCHES,
    RestrictedUnpickler,
    cifar10,
    read_cifar_batch,
    restricted_load,
)
from archzoo.data.splits import epoch_generator, holdout
from archzoo.errors import DataError, UserError
from archzoo.registry import create_dataset

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def dump(obj, path: Path, protocol: int = 2) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def make_batch(n: int, rng: np.random.Generator, name: str) -> dict:
    """One batch dict as in the original files: bytes keys, an N×3072 uint8 array, a list of ints."""
    return {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def make_cifar_dir(folder: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict[str, dict]:
    """A tiny ``cifar-10-batches-py`` folder in the original format (protocol-2 pickles)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {name: make_batch(per_batch, rng, name) for name in TRAIN_BATCHES}
    batches["test_batch"] = make_batch(n_test, rng, "testing batch 1 of 1")
    for name, d in batches.items():
        dump(d, folder / name)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    dump(meta, folder / "batches.meta")
    return batches


@pytest.fixture
def cifar_root(tmp_path):
    batches = make_cifar_dir(tmp_path / "cifar10" / "cifar-10-batches-py")
    return tmp_path, batches


def test_shapes_values_and_split(cifar_root):
    root, batches = cifar_root
    b = cifar10(data_dir=root, val_fraction=0.25, seed=1, normalize="unit")
    assert (len(b.train), len(b.val), len(b.test)) == (15, 5, 6)
    x, y = b.train.tensors
    assert x.shape == (15, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    data = np.concatenate([batches[n][b"data"] for n in TRAIN_BATCHES])
    labels = np.concatenate([batches[n][b"labels"] for n in TRAIN_BATCHES])
    tr, va = holdout(20, 0.25, 1)
    # each row is 1024 red, 1024 green, 1024 blue values of a row-major 32×32 image
    expect = torch.from_numpy(data[tr.numpy()]).float().view(-1, 3, 32, 32) / 255
    torch.testing.assert_close(x, expect)
    torch.testing.assert_close(x[0, 1, 0, 5], torch.tensor(float(data[tr[0], 1024 + 5]) / 255))
    assert torch.equal(y, torch.from_numpy(labels[tr.numpy()]))
    assert torch.equal(b.val.tensors[1], torch.from_numpy(labels[va.numpy()]))
    assert torch.equal(b.test.tensors[1], torch.tensor(batches["test_batch"][b"labels"]))


def test_info_and_standard_normalisation(cifar_root):
    root, batches = cifar_root
    b = create_dataset("cifar10", data_dir=root)
    info = b.info
    assert info["classes"] == CLASSES and info["num_classes"] == 10
    assert info["in_channels"] == 3 and info["image_size"] == 32 and info["kind"] == "image"
    assert info["mean"] == list(CIFAR10_MEAN) and info["std"] == list(CIFAR10_STD)
    assert info["normalize"] == "standard"
    raw = torch.from_numpy(batches["test_batch"][b"data"]).float().view(-1, 3, 32, 32) / 255
    m = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    s = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(b.test.tensors[0], (raw - m) / s)


@pytest.mark.parametrize("sub", ["cifar10/cifar-10-batches-py", "cifar-10-batches-py", "cifar10"])
def test_layouts(tmp_path, sub):
    make_cifar_dir(tmp_path / sub)
    assert cifar10(data_dir=tmp_path).info["source"] == str(tmp_path / sub)


def test_limit_and_symmetric(cifar_root):
    root, _ = cifar_root
    b = cifar10(data_dir=root, limit=10, val_fraction=0.2, normalize="symmetric")
    assert (len(b.train), len(b.val), len(b.test)) == (8, 2, 6)
    x = b.train.tensors[0]
    assert x.min() >= -1 and x.max() <= 1


def test_augment_pads_with_per_channel_black(cifar_root):
    root, _ = cifar_root
    b = cifar10(data_dir=root, augment={"crop_padding": 4, "cutout": 8})
    assert b.val.augment is None and b.test.augment is None
    m = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    s = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    white, black = (1 - m) / s, (0 - m) / s
    out = b.train.augment(white.expand(32, 3, 32, 32).clone(), epoch_generator(0, 0, 1))
    for c in range(3):
        vals = out[:, c].unique()
        torch.testing.assert_close(vals, torch.stack([black[0, c, 0, 0], white[0, c, 0, 0]]).sort().values)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_in_a_pickle_is_refused(cifar_root):
    root, _ = cifar_root
    folder = root / "cifar10" / "cifar-10-batches-py"
    marker = root / "pwned"
    dump({b"data": _Evil(marker), b"labels": []}, folder / "data_batch_3")
    with pytest.raises(DataError, match="refused to load global") as err:
        cifar10(data_dir=root)
    assert str(folder / "data_batch_3") in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,name", [("builtins", "eval"), ("numpy", "load"), ("numpy.testing", "assert_equal"), ("os", "system")]
)
def test_only_allowed_globals(tmp_path, module, name):
    p = tmp_path / "b"
    p.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b".")
    with pytest.raises(DataError, match=f"refused to load global {module}.{name}"):
        restricted_load(p)


def test_codecs_encode_is_latin1_only(tmp_path):
    p = tmp_path / "b"
    # _codecs.encode("x", "zlib") -- a codec other than the latin-1 that Python 3 uses for bytes
    p.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(DataError, match="refused _codecs.encode"):
        restricted_load(p)


def test_truncated_and_garbage_files_name_the_file(cifar_root):
    root, _ = cifar_root
    folder = root / "cifar10" / "cifar-10-batches-py"
    p = folder / "data_batch_2"
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(DataError, match="not a valid CIFAR pickle") as err:
        cifar10(data_dir=root)
    assert str(p) in str(err.value)
    p.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="data_batch_2 is not a valid CIFAR pickle"):
        cifar10(data_dir=root)
    good = folder / "data_batch_1"
    p.write_bytes(good.read_bytes() + b"\x00junk")
    with pytest.raises(DataError, match="data_batch_2 has data after the end"):
        cifar10(data_dir=root)


@pytest.mark.parametrize(
    "bad,match",
    [
        ([1, 2, 3], "holds a list, not the dict"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "lacks the 'data' array or the 'labels'"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, r"not N×3072 uint8"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, r"not N×3072 uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"labels outside 0\.\.9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"a", b"b"]}, "not a list of integers"),
    ],
)
def test_wrong_content(tmp_path, bad, match):
    p = tmp_path / "data_batch_1"
    dump(bad, p)
    with pytest.raises(DataError, match=match) as err:
        read_cifar_batch(p)
    assert str(p) in str(err.value)


def test_bad_meta(cifar_root):
    root, _ = cifar_root
    meta = root / "cifar10" / "cifar-10-batches-py" / "batches.meta"
    dump({b"num_vis": 3072}, meta)
    with pytest.raises(DataError, match="batches.meta lacks the 'label_names'"):
        cifar10(data_dir=root)


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING opcodes), as the original files have them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def test_python2_style_pickle(tmp_path):
    rng = np.random.default_rng(5)
    d = make_batch(3, rng, "training batch 1 of 5")
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(d)
    raw = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    p = tmp_path / "data_batch_1"
    p.write_bytes(raw)
    x, y = read_cifar_batch(p)
    np.testing.assert_array_equal(x.reshape(3, 3072), d[b"data"])
    assert y.tolist() == d[b"labels"]


def test_str_keys_and_newer_protocol(tmp_path):
    p = tmp_path / "b"
    dump({"data": np.ones((2, 3072), np.uint8), "labels": np.array([1, 2])}, p, protocol=pickle.HIGHEST_PROTOCOL)
    x, y = read_cifar_batch(p)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [1, 2]
    with open(p, "rb") as f:
        assert RestrictedUnpickler(f).load()["labels"].dtype.kind == "i"


def test_missing_dataset(tmp_path):
    with pytest.raises(DataError) as err:
        cifar10(data_dir=tmp_path)
    msg = str(err.value)
    for sub in ("cifar10/cifar-10-batches-py", "cifar-10-batches-py", "cifar10"):
        assert str(tmp_path / sub) in msg
    assert "archzoo data download cifar10" in msg and "data_batch_1" in msg and "batches.meta" in msg


def test_bad_arguments(cifar_root):
    root, _ = cifar_root
    with pytest.raises(UserError, match="Unknown normalize"):
        cifar10(data_dir=root, normalize="imagenet")
