"""CIFAR-10 from its python batch files, read without trusting pickle.

The "python version" of CIFAR-10 (Krizhevsky 2009,
https://www.cs.toronto.edu/~kriz/cifar.html) is a folder
``cifar-10-batches-py`` of pickles written by Python 2: ``data_batch_1`` …
``data_batch_5`` (10,000 images each), ``test_batch`` and ``batches.meta``.
Each batch is a dict whose ``b"data"`` is a ``10000×3072`` uint8 array (the
1024 red, then 1024 green, then 1024 blue values of a 32×32 image, row-major)
and whose ``b"labels"`` is a list of ints in 0–9; ``batches.meta`` holds
``b"label_names"``.

A pickle can run any code while it loads, so the files go through
:class:`RestrictedUnpickler`, which builds numpy arrays and nothing else.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archzoo.data.images import check_image_args, image_bundle, normalization, split_holdout
from archzoo.data.root import PathLike, find_dataset_dir
from archzoo.data.splits import DataBundle
from archzoo.errors import DataError
from archzoo.registry import register_dataset

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 writes ``bytes`` into protocol-2 pickles, latin-1 only."""
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", errors)


def _allowed() -> dict[tuple[str, str], Callable[..., Any] | type]:
    table: dict[tuple[str, str], Callable[..., Any] | type] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
        ("builtins", "bytes"): bytes,
    }
    # Python 2 / numpy 1.x pickles name numpy.core; numpy 2 writes numpy._core.
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        table[(f"{mod}.multiarray", "scalar")] = _multiarray.scalar
        table[(f"{mod}.numeric", "_frombuffer")] = _numeric._frombuffer
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays, dtypes, scalars and plain data.

    ``find_class`` resolves a fixed table of (module, name) pairs to objects
    imported here; any other global, including every import the pickle asks
    for, raises :class:`pickle.UnpicklingError`. Python 2 strings load as bytes.
    """

    ALLOWED = _allowed()

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}") from None


def restricted_load(path: PathLike) -> Any:
    """Unpickle a file with :class:`RestrictedUnpickler`; any failure is a :class:`DataError`."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            obj = RestrictedUnpickler(f).load()
            extra = f.read(1)
    except FileNotFoundError:
        raise DataError(f"{p} does not exist.") from None
    except Exception as e:  # a malformed pickle can fail in many ways; all of them are the file's fault
        raise DataError(f"{p} is not a valid CIFAR pickle ({type(e).__name__}: {e}).") from None
    if extra:
        raise DataError(f"{p} has data after the end of its pickle.")
    return obj


def _str_keys(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not the dict of a CIFAR batch.")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def read_cifar_batch(path: PathLike, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of one batch file."""
    p = Path(path)
    d = _str_keys(restricted_load(p), p)
    data, labels = d.get("data"), d.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{p} lacks the 'data' array or the 'labels' list of a CIFAR batch.")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{p} holds data of shape {data.shape} and type {data.dtype}, not N×3072 uint8.")
    try:
        y = np.asarray(labels)
    except (TypeError, ValueError):
        y = np.asarray([], dtype=object)
    if y.ndim != 1 or not (y.dtype.kind in "iu" or y.size == 0):
        raise DataError(f"{p} holds labels that are not a list of integers.")
    if len(y) != len(data):
        raise DataError(f"{p} holds {len(data)} images but {len(y)} labels.")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"{p} holds labels outside 0..{num_classes - 1}.")
    return data.reshape(-1, 3, 32, 32), y.astype(np.int64)


def read_cifar_meta(path: PathLike) -> list[str]:
    """The class names listed in ``batches.meta``."""
    p = Path(path)
    names = _str_keys(restricted_load(p), p).get("label_names")
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise DataError(f"{p} lacks the 'label_names' list of CIFAR-10 class names.")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_SUBDIRS = ("cifar10/cifar-10-batches-py", "cifar-10-batches-py", "cifar10")


@register_dataset("cifar10")
def cifar10(
    data_dir: PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: dict | None = None,
    normalize: str = "standard",
    limit: int | None = None,
) -> DataBundle:
    """CIFAR-10 (Krizhevsky 2009): 60,000 colour 32×32 images of 10 classes.

    The 50,000 training images minus a held-out validation part, and the
    10,000 test images. Found under the data root in
    ``cifar10/cifar-10-batches-py/``, ``cifar-10-batches-py/`` or ``cifar10/``.

    Args:
        data_dir: the data root (see :func:`archzoo.data.root.data_root`).
        val_fraction: the part of the training images held out for validation.
        seed: the seed of the hold-out split.
        augment: batched augmentation of the train split (``crop_padding``,
            ``flip``, ``cutout``); padding is black in every channel.
        normalize: ``"standard"`` (per-channel train mean (0.4914, 0.4822,
            0.4465), std (0.2470, 0.2435, 0.2616)), ``"unit"`` or ``"symmetric"``.
        limit: keep only the first ``limit`` train and test images.

    Shapes:
        images ``(N, 3, 32, 32)`` float32, labels ``(N,)`` int64.
    """
    check_image_args(val_fraction, normalize, limit)
    folder = find_dataset_dir(
        "CIFAR-10",
        data_dir,
        subdirs=CIFAR10_SUBDIRS,
        required=(*TRAIN_BATCHES, "test_batch", "batches.meta"),
        how_to_get="run 'archzoo data download cifar10' where a network exists "
        "(or unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)",
    )
    classes = read_cifar_meta(folder / "batches.meta")
    if len(classes) < 2:
        raise DataError(f"{folder / 'batches.meta'} lists {len(classes)} class names.")
    parts = [read_cifar_batch(folder / b, len(classes)) for b in TRAIN_BATCHES]
    train_x = np.concatenate([x for x, _ in parts])[:limit]
    train_y = np.concatenate([y for _, y in parts])[:limit]
    test_x, test_y = read_cifar_batch(folder / "test_batch", len(classes))
    test = (torch.from_numpy(test_x[:limit]), torch.from_numpy(test_y[:limit]))
    train, val = split_holdout(torch.from_numpy(train_x), torch.from_numpy(train_y), val_fraction, seed)
    mean, std = normalization(normalize, CIFAR10_MEAN, CIFAR10_STD)
    info = {
        "name": "cifar10",
        "num_classes": len(classes),
        "in_channels": 3,
        "image_size": 32,
        "classes": classes,
        "normalize": normalize,
        "kind": "image",
        "source": str(folder),
    }
    return image_bundle(train, val, test, mean=mean, std=std, augment=augment, info=info)
