"""Folders of image files, one sub-folder per class, decoded once and held in memory.

The layout is the one of torchvision's ``ImageFolder``::

    root/train/<class>/*.jpg|jpeg|png|bmp|webp
    root/val/<class>/...     (optional; else held out from train)
    root/test/<class>/...    (optional)

or, without a ``train/`` folder, ``root/<class>/...`` as the training images.
Every image is decoded once with PIL, its shorter side resized to
``image_size`` and the centre square kept, so a split is one uint8 tensor; it
is then normalised to float32 like the other in-memory datasets.

Augmentation follows the tutorials: torchvision ``transforms.v2``
(``RandomResizedCrop``, ``RandomRotation``, ``ColorJitter``) on images in
[0, 1], then ``Normalize``. A v2 transform called on a batch draws *one*
random crop/angle/jitter for the whole batch, so these run per sample inside
the batched augment function, a Python loop over the batch (what that costs is
in docs/vision.md). Flips, padded crops and cut-outs (``flip``,
``crop_padding``, ``cutout``) stay vectorised (:mod:`archzoo.data.augment`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from archzoo.data.augment import AUGMENT_KEYS
from archzoo.data.images import (
    black_level,
    check_image_args,
    image_augment,
    image_bundle,
    normalization,
    normalize_images,
    split_holdout,
)
from archzoo.data.root import PathLike, data_root
from archzoo.data.splits import Augment, DataBundle
from archzoo.errors import DataError, UserError
from archzoo.registry import register_dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FOLDER_NORMALIZE = ("standard", "imagenet", "unit", "symmetric")
V2_AUGMENT_KEYS = ("resized_crop", "rotation", "color_jitter")

Size = int | Sequence[int]


def _hw(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def decode_image(path: PathLike, size: Size, mode: str = "RGB") -> np.ndarray:
    """Decode an image file to uint8 ``(H, W, C)`` (``(H, W)`` for mode ``"L"``).

    The largest centred box of the target's aspect ratio is resized to
    ``size`` in one step: for a square target, the shorter side is resized to
    ``size`` and the centre cropped. JPEGs are decoded at a reduced scale when
    they are much larger than the target (PIL's draft mode).

    Raises:
        DataError: the file cannot be opened or decoded; the message names it.
    """
    h, w = _hw(size)
    try:
        with Image.open(path) as im:
            im.draft(None, (w, h))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale while still >= the target
            im = ImageOps.exif_transpose(im)
            im = im.convert(mode)
            sw, sh = im.size
            if sw * h > sh * w:  # wider than the target: full height, centred width
                bw, bh = sh * w / h, sh
            else:
                bw, bh = sw, sw * h / w
            box = ((sw - bw) / 2, (sh - bh) / 2, (sw + bw) / 2, (sh + bh) / 2)
            out = im.resize((w, h), Image.Resampling.BILINEAR, box=box)
            return np.array(out, dtype=np.uint8)  # a writable copy
    except Exception as e:  # PIL raises many error types for bad files; all mean "unreadable"
        raise DataError(f"Cannot read image {path}: {e or type(e).__name__}.") from None


def load_image(
    path: PathLike,
    image_size: Size,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    in_channels: int = 3,
) -> Tensor:
    """One image file as a normalised model input ``(1, C, H, W)``, for prediction.

    Args:
        path: any image file PIL can read.
        image_size: the model's input size (int for square, or ``(H, W)``).
        mean: per-channel mean in [0, 1] the model was trained with (``info["mean"]``).
        std: per-channel std (``info["std"]``).
        in_channels: 1 converts to grayscale, 3 to RGB.
    """
    if in_channels not in (1, 3):
        raise UserError(f"load_image supports 1 or 3 channels, not {in_channels}.")
    arr = decode_image(path, image_size, "L" if in_channels == 1 else "RGB")
    x = torch.from_numpy(arr.reshape(arr.shape[0], arr.shape[1], in_channels)).permute(2, 0, 1)[None]
    m = [float(mean)] * in_channels if isinstance(mean, int | float) else [float(v) for v in mean]
    s = [float(std)] * in_channels if isinstance(std, int | float) else [float(v) for v in std]
    if len(m) != in_channels or len(s) != in_channels:
        raise UserError(f"mean and std need {in_channels} values, got {len(m)} and {len(s)}.")
    return normalize_images(x.contiguous(), m, s)


# --- reading a folder tree ------------------------------------------------------


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def scan_split(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """The image files and labels of one split folder, and its class names.

    Args:
        folder: holds one sub-folder per class.
        classes: the training classes; ``None`` takes them from ``folder``.
    """
    dirs = _class_dirs(folder)
    if classes is None:
        classes = [d.name for d in dirs]
        if not classes:
            raise DataError(f"{folder} holds no class folders; put each class's images in {folder}/<class>/.")
    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        if d.name not in index:
            raise DataError(f"Class folder {d} is not one of the training classes.")
        found = _images_in(d)
        if not found:
            raise DataError(f"Class folder {d} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
        files += found
        labels += [index[d.name]] * len(found)
    return files, labels, classes


def _decode_all(files: list[Path], size: int, skip_bad: bool, skipped: list[Path]) -> tuple[Tensor, list[bool]]:
    """Decode files in threads (PIL releases the GIL) into uint8 ``(N, 3, S, S)``.

    Returns the tensor of the readable images and a keep-mask over ``files``.
    """

    def one(p: Path) -> np.ndarray | DataError:
        try:
            return decode_image(p, size, "RGB")
        except DataError as e:
            return e

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, files))
    keep = []
    arrays = []
    for p, r in zip(files, results, strict=True):
        if isinstance(r, DataError):
            if not skip_bad:
                raise r
            skipped.append(p)
            keep.append(False)
        else:
            arrays.append(r)
            keep.append(True)
    if not arrays:
        return torch.empty(0, 3, size, size, dtype=torch.uint8), keep
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    return x, keep


def _read_split(
    folder: Path, classes: list[str] | None, size: int, skip_bad: bool, skipped: list[Path]
) -> tuple[Tensor, Tensor, list[str]]:
    files, labels, classes = scan_split(folder, classes)
    x, keep = _decode_all(files, size, skip_bad, skipped)
    y = torch.tensor([lab for lab, k in zip(labels, keep, strict=True) if k], dtype=torch.int64)
    return x, y, classes


def channel_stats(x: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std in [0, 1] of uint8 ``(N, C, H, W)``, from 256-bin histograms."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1), minlength=256).to(torch.float64)
        n = hist.sum().clamp_min(1.0)
        mean = (hist * values).sum() / n
        var = (hist * (values - mean) ** 2).sum() / n
        means.append(float(mean))
        stds.append(max(float(var.sqrt()), 1e-3))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)


# --- augmentation ---------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _floats(v: Any, *lengths: int) -> tuple[float, ...]:
    out = tuple(float(x) for x in v)
    if len(out) not in lengths:
        raise ValueError(f"expected {' or '.join(map(str, lengths))} numbers, got {len(out)}")
    return out


def folder_augment(
    spec: dict[str, Any] | None, mean: Sequence[float], std: Sequence[float], image_size: int
) -> Augment | None:
    """The train augmentation of an image folder.

    Args:
        spec: any of ``resized_crop`` (true for scale (0.08, 1), a minimum
            scale, or ``[lo, hi]``), ``rotation`` (degrees, or ``[lo, hi]``),
            ``color_jitter`` (one strength for brightness, contrast and
            saturation, or ``[b, c, s]`` / ``[b, c, s, h]``) — torchvision v2,
            per sample — and the batched ``flip``, ``crop_padding``, ``cutout``.
        mean: the normalisation mean, to map batches back to [0, 1] for v2.
        std: the normalisation std.
        image_size: the output size of ``RandomResizedCrop``.
    """
    from torchvision.transforms import v2  # lazy: importing torchvision costs seconds

    if not spec:
        return None
    unknown = set(spec) - set(AUGMENT_KEYS) - set(V2_AUGMENT_KEYS)
    if unknown:
        keys = ", ".join((*V2_AUGMENT_KEYS, *AUGMENT_KEYS))
        raise UserError(f"Unknown augmentation {', '.join(sorted(unknown))}; use {keys}.")
    batched = image_augment({k: v for k, v in spec.items() if k in AUGMENT_KEYS}, black_level(mean, std))
    steps: list[Any] = []
    try:
        rrc = spec.get("resized_crop")
        if rrc:
            # true: torchvision's default scale; a number: the smallest scale; a pair: (min, max)
            scale = (0.08, 1.0) if rrc is True else (float(rrc), 1.0) if _is_number(rrc) else _floats(rrc, 2)
            steps.append(v2.RandomResizedCrop(image_size, scale=scale, antialias=True))
        rot = spec.get("rotation")
        if rot:
            degrees = float(rot) if _is_number(rot) else _floats(rot, 2)
            steps.append(v2.RandomRotation(degrees, fill=0.0))  # 0 is black in [0, 1]
        jitter = spec.get("color_jitter")
        if jitter:
            # a number: that strength of brightness, contrast and saturation; else [b, c, s] or [b, c, s, h]
            bcsh = (float(jitter),) * 3 + (0.0,) if _is_number(jitter) else (*_floats(jitter, 3, 4), 0.0)[:4]
            steps.append(v2.ColorJitter(brightness=bcsh[0], contrast=bcsh[1], saturation=bcsh[2], hue=bcsh[3]))
    except (TypeError, ValueError) as e:
        raise UserError(f"Bad augmentation setting {spec}: {e}.") from None
    if not steps:
        return batched
    per_sample = v2.Compose(steps)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        mm, ss = m.to(x.device), sd.to(x.device)
        # v2 draws from the global CPU generator; seed a forked copy from `g` so the
        # batch stays a pure function of (seed, epoch, batch) and global state is untouched.
        seed = int(torch.randint(0, 2**62, (1,), generator=g))
        u = (x * ss + mm).clamp_(0.0, 1.0)  # back to [0, 1]
        threads = torch.get_num_threads()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also reseed the GPU's, which fork_rng does not restore.
            torch.default_generator.manual_seed(seed)
            # Ops on one small image gain nothing from intra-op threads, and on a busy
            # machine their hand-offs cost more than the work (20x for RandomRotation).
            torch.set_num_threads(1)
            try:
                u = torch.stack([per_sample(img) for img in u])  # one random draw per sample
            finally:
                torch.set_num_threads(threads)
        x = (u - mm) / ss
        return batched(x, g) if batched is not None else x

    return augment


# --- the dataset ----------------------------------------------------------------


def _resolve_root(root: str | os.PathLike[str], data_dir: PathLike | None) -> Path:
    if str(root) == "":
        if data_dir is None or str(data_dir) == "":
            raise UserError("image_folder needs root=<folder> (absolute, or relative to the data root).")
        candidates = [Path(data_dir).expanduser()]
    else:
        r = Path(root).expanduser()
        candidates = [r] if r.is_absolute() else [Path.cwd() / r, data_root(data_dir) / r]
    for c in candidates:
        if c.is_dir():
            return c
    where = " or ".join(str(c) for c in candidates)
    raise DataError(f"Image folder {where} does not exist; it needs train/<class>/ folders of images.")


@register_dataset("image_folder")
def image_folder(
    data_dir: PathLike | None = None,
    root: str = "",
    image_size: int = 64,
    val_fraction: float = 0.1,
    seed: int = 0,
    augment: dict | None = None,
    skip_bad: bool = False,
    normalize: str = "standard",
) -> DataBundle:
    """Images in class folders (``root/train/<class>/``, optional ``val/`` and ``test/``).

    Args:
        data_dir: the data root; a relative ``root`` is looked up in the
            working folder, then under it. With ``root=""``, ``data_dir`` is the folder.
        root: the folder holding ``train/`` (or the class folders themselves).
        image_size: the side of the square images after resize and centre crop.
        val_fraction: held out from train when there is no ``val/`` folder.
        seed: the seed of that hold-out.
        augment: see :func:`folder_augment`.
        skip_bad: skip unreadable images with one warning instead of failing.
        normalize: ``"standard"`` (per-channel mean/std of the train split),
            ``"imagenet"`` (ImageNet statistics, for pretrained weights),
            ``"unit"`` ([0, 1]) or ``"symmetric"`` ([-1, 1]).

    Shapes:
        images ``(N, 3, image_size, image_size)`` float32, labels ``(N,)`` int64.
    """
    check_image_args(val_fraction, normalize, modes=FOLDER_NORMALIZE)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise UserError(f"image_size must be a positive integer, got {image_size!r}.")
    base = _resolve_root(root, data_dir)
    train_dir = base / "train" if (base / "train").is_dir() else base
    skipped: list[Path] = []
    x, y, classes = _read_split(train_dir, None, image_size, skip_bad, skipped)
    if (base / "val").is_dir() and train_dir != base:
        vx, vy, _ = _read_split(base / "val", classes, image_size, skip_bad, skipped)
        train, val = (x, y), (vx, vy)
    else:
        train, val = split_holdout(x, y, val_fraction, seed)
    test = None
    if (base / "test").is_dir() and train_dir != base:
        tx, ty, _ = _read_split(base / "test", classes, image_size, skip_bad, skipped)
        test = (tx, ty)
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} unreadable image file(s) under {base}, e.g. {skipped[0]}.", stacklevel=2)
    if len(train[1]) == 0:
        raise DataError(f"{train_dir} holds no readable training images.")
    if normalize == "standard":
        mean, std = channel_stats(train[0])
    elif normalize == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = normalization(normalize, (0.0,) * 3, (1.0,) * 3)
    info = {
        "name": "image_folder",
        "num_classes": len(classes),
        "in_channels": 3,
        "image_size": image_size,
        "classes": classes,
        "normalize": normalize,
        "kind": "image",
        "source": str(base),
    }
    bundle = image_bundle(train, val, test, mean=mean, std=std, augment=None, info=info)
    bundle.train.augment = folder_augment(augment, mean, std, image_size)
    return bundle
