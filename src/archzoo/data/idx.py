"""MNIST-format idx files, and the Fashion-MNIST and MNIST datasets built on them.

An idx file (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a 4-byte magic
number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then
the values in row-major order, big-endian. Labels are ``0x00000801`` (uint8,
1-D) and images ``0x00000803`` (uint8, ``N×H×W``). The files usually come
gzipped. :func:`read_idx` reads the whole file with one ``np.frombuffer``.

What the image datasets share (normalisation, the hold-out, the bundle) is in
:mod:`archzoo.data.images`.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from archzoo.data.images import check_image_args, image_bundle, normalization, refuse_flip, split_holdout
from archzoo.data.root import DEBIAN_FASHION_MNIST, PathLike, find_dataset_dir
from archzoo.data.splits import DataBundle
from archzoo.errors import DataError
from archzoo.registry import register_dataset

# idx type code -> numpy dtype (multi-byte types are big-endian in the file).
IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_LABELS = 0x00000801
IDX_IMAGES = 0x00000803


def _file_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is a gzip stream."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror or e}.") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
            raise DataError(f"{path} is a corrupt or truncated gzip file ({e}).") from None
    if path.name.endswith(".gz"):
        raise DataError(f"{path} is not a gzip file although its name ends in .gz.")
    return raw


def read_idx(path: PathLike, expect: int | None = None) -> np.ndarray:
    """Read an idx file (raw or gzipped) into a writable, native-endian array.

    Args:
        path: the file.
        expect: the magic number the file must have (``IDX_IMAGES``, ``IDX_LABELS``);
            ``None`` accepts any valid idx type.

    Raises:
        DataError: the file is unreadable, not gzip although named ``.gz``, a
            corrupt or truncated gzip stream, has a wrong magic number, or its
            length does not match the sizes in its header.
    """
    p = Path(path)
    data = _file_bytes(p)
    if len(data) < 4:
        raise DataError(f"{p} is too short to be an idx file ({len(data)} bytes).")
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{p} is not an idx file: its magic number is 0x{magic:08x}, "
            f"not 0x{IDX_IMAGES:08x} (images), 0x{IDX_LABELS:08x} (labels) or another idx type."
        )
    if expect is not None and magic != expect:
        raise DataError(f"{p} has magic number 0x{magic:08x} where 0x{expect:08x} was expected.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{p} is truncated: it ends inside its {ndim}-dimension header.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    count = math.prod(dims)
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{p} is {state}: a {'×'.join(map(str, dims))} array of {dtype.name} needs {expected} bytes, "
            f"the file holds {len(data)}."
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # a copy: writable and native byte order


# --- Fashion-MNIST and MNIST -----------------------------------------------------


@dataclass(frozen=True)
class IdxDataset:
    """Where to find one idx dataset and its facts.

    ``mean``/``std`` are the statistics of the 60,000 training images in [0, 1].
    """

    key: str
    title: str
    subdirs: tuple[str, ...]
    mean: float
    std: float
    classes: tuple[str, ...]
    how_to_get: str
    system_dirs: tuple[Path, ...] = ()
    flip_changes_class: bool = False  # a mirrored digit is no digit: flips are refused


IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

FASHION_MNIST = IdxDataset(
    key="fashion_mnist",
    title="Fashion-MNIST",
    subdirs=("fashion-mnist", "fashion_mnist", "FashionMNIST/raw"),
    mean=0.2860,
    std=0.3530,
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    how_to_get="run 'apt-get install dataset-fashion-mnist' or, where a network exists, "
    "'archzoo data download fashion_mnist'",
    system_dirs=(DEBIAN_FASHION_MNIST,),
)

MNIST = IdxDataset(
    key="mnist",
    title="MNIST",
    subdirs=("mnist", "MNIST/raw"),
    mean=0.1307,
    std=0.3081,
    classes=tuple(str(d) for d in range(10)),
    how_to_get="run 'archzoo data download mnist' where a network exists",
    flip_changes_class=True,
)


def _idx_path(folder: Path, stem: str) -> Path:
    gz = folder / f"{stem}.gz"
    return gz if gz.is_file() else folder / stem


def read_idx_split(folder: Path, split: str, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` and labels ``(N,)``, both uint8, of the ``train`` or ``test`` split."""
    img_path, lab_path = (_idx_path(folder, s) for s in IDX_FILES[split])
    images = read_idx(img_path, expect=IDX_IMAGES)
    labels = read_idx(lab_path, expect=IDX_LABELS)
    if len(images) != len(labels):
        raise DataError(f"{img_path} holds {len(images)} images but {lab_path} holds {len(labels)} labels.")
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(f"{lab_path} holds label {int(labels.max())}, outside 0..{num_classes - 1}.")
    return images, labels


def load_idx_dataset(
    spec: IdxDataset,
    data_dir: PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: dict[str, Any] | None = None,
    normalize: str = "standard",
    limit: int | None = None,
) -> DataBundle:
    """Build the bundle of an idx dataset; the registered builders only pick ``spec``."""
    check_image_args(val_fraction, normalize, limit)
    if spec.flip_changes_class:
        refuse_flip(augment, spec.title)
    folder = find_dataset_dir(
        spec.title,
        data_dir,
        subdirs=spec.subdirs,
        required=[(f"{s}.gz", s) for pair in IDX_FILES.values() for s in pair],
        how_to_get=spec.how_to_get,
        system_dirs=spec.system_dirs,
    )
    num_classes = len(spec.classes)
    xs: dict[str, tuple[Tensor, Tensor]] = {}
    for split in IDX_FILES:
        images, labels = read_idx_split(folder, split, num_classes)
        x = torch.from_numpy(images[:limit]).unsqueeze(1)  # (N, 1, H, W) uint8
        y = torch.from_numpy(labels[:limit].astype(np.int64))
        xs[split] = (x, y)
    train, val = split_holdout(*xs["train"], val_fraction, seed)
    mean, std = normalization(normalize, (spec.mean,), (spec.std,))
    h, w = xs["train"][0].shape[-2:]
    info = {
        "name": spec.key,
        "num_classes": num_classes,
        "in_channels": 1,
        "image_size": int(h) if h == w else (int(h), int(w)),
        "classes": list(spec.classes),
        "normalize": normalize,
        "kind": "image",
        "source": str(folder),
    }
    if spec.flip_changes_class:
        info["flip_changes_class"] = True
    return image_bundle(train, val, xs["test"], mean=mean, std=std, augment=augment, info=info)


@register_dataset("fashion_mnist")
def fashion_mnist(
    data_dir: PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: dict | None = None,
    normalize: str = "standard",
    limit: int | None = None,
) -> DataBundle:
    """Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, https://arxiv.org/abs/1708.07747).

    70,000 grayscale 28×28 images of 10 kinds of clothing: the 60,000 training
    images minus a held-out validation part, and the 10,000 test images. Found
    under the data root in ``fashion-mnist/`` (or ``fashion_mnist/``,
    ``FashionMNIST/raw/``), or where Debian's ``dataset-fashion-mnist`` installs it.

    Args:
        data_dir: the data root (see :func:`archzoo.data.root.data_root`).
        val_fraction: the part of the training images held out for validation.
        seed: the seed of the hold-out split.
        augment: batched augmentation of the train split (``crop_padding``,
            ``flip``, ``cutout``); padding is black.
        normalize: ``"standard"`` (train mean 0.2860, std 0.3530), ``"unit"``
            ([0, 1]) or ``"symmetric"`` ([-1, 1]).
        limit: keep only the first ``limit`` train and test images.

    Shapes:
        images ``(N, 1, 28, 28)`` float32, labels ``(N,)`` int64.
    """
    return load_idx_dataset(FASHION_MNIST, data_dir, val_fraction, seed, augment, normalize, limit)


@register_dataset("mnist")
def mnist(
    data_dir: PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: dict | None = None,
    normalize: str = "standard",
    limit: int | None = None,
) -> DataBundle:
    """MNIST handwritten digits (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/).

    Found under the data root in ``mnist/`` or ``MNIST/raw/``. The arguments
    are those of :func:`fashion_mnist`; ``"standard"`` uses mean 0.1307, std 0.3081.

    Shapes:
        images ``(N, 1, 28, 28)`` float32, labels ``(N,)`` int64.
    """
    return load_idx_dataset(MNIST, data_dir, val_fraction, seed, augment, normalize, limit)
