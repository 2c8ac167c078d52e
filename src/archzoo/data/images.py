r"""What the in-memory image datasets share: normalisation modes, the hold-out, black-padded
augmentation and the bundle of normalised splits.

Every image dataset (idx files, CIFAR-10, image folders) decodes its images to
uint8 ``(N, C, H, W)`` tensors and hands them to :func:`image_bundle`, which
stores :math:`(x/255 - \mu_c)/\sigma_c` per channel :math:`c` and records
:math:`\mu, \sigma` in the bundle's ``info`` so that prediction and the
generative tasks can undo it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from archzoo.data.augment import build_augment
from archzoo.data.splits import Augment, DataBundle, TensorSplit, holdout
from archzoo.errors import UserError

NORMALIZE_MODES = ("standard", "unit", "symmetric")


def check_image_args(
    val_fraction: float, normalize: str, limit: int | None = None, modes: Sequence[str] = NORMALIZE_MODES
) -> None:
    """Reject bad dataset arguments with one sentence."""
    if not 0.0 <= float(val_fraction) < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    if normalize not in modes:
        raise UserError(f"Unknown normalize '{normalize}'; use {', '.join(modes)}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"limit must be a positive integer or None, got {limit!r}.")


def refuse_flip(augment: dict[str, Any] | None, title: str) -> None:
    """Refuse ``data.augment.flip`` for a dataset whose classes a mirror changes (digits)."""
    if augment and augment.get("flip"):
        raise UserError(
            f"data.augment.flip mirrors images, and {title} holds digits, which a mirror turns into other shapes; "
            "leave flips off."
        )


def normalization(
    normalize: str, mean: Sequence[float], std: Sequence[float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel ``(mean, std)`` that a mode applies to ``x/255``.

    ``"standard"`` uses the given dataset statistics; ``"unit"`` keeps ``x/255``
    in [0, 1] (mean 0, std 1); ``"symmetric"`` maps to [-1, 1] (mean 0.5, std 0.5).
    Every mode is thus ``(x/255 - mean)/std``, and ``info`` records the pair so
    that prediction can repeat it.
    """
    c = len(mean)
    if normalize == "standard":
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if normalize == "unit":
        return (0.0,) * c, (1.0,) * c
    if normalize == "symmetric":
        return (0.5,) * c, (0.5,) * c
    raise UserError(f"Unknown normalize '{normalize}'; use {', '.join(NORMALIZE_MODES)}.")


def normalize_images(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ``(N, C, H, W)`` -> float32 ``(x/255 - mean)/std`` per channel."""
    out = x.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    if bool((m != 0).any()):
        out.sub_(m)
    if bool((s != 1).any()):
        out.div_(s)
    return out


def black_level(mean: Sequence[float], std: Sequence[float]) -> tuple[float, ...]:
    """The normalised value of a black pixel, per channel: ``(0 - mean)/std``."""
    return tuple(-m / s for m, s in zip(mean, std, strict=True))


def image_augment(spec: dict[str, Any] | None, black: Sequence[float]) -> Augment | None:
    """:func:`~archzoo.data.augment.build_augment` with padding and cut-outs black.

    ``build_augment`` fills with one scalar. When the channels' black levels
    differ (CIFAR-10), the batch is shifted so that black is 0, augmented with
    fill 0, and shifted back: flips, crops and cut-outs commute with the shift.
    """
    if len(set(black)) <= 1:
        return build_augment(spec, fill=float(black[0]) if black else 0.0)
    aug = build_augment(spec, fill=0.0)
    if aug is None:
        return None
    shift = torch.tensor(black, dtype=torch.float32).view(1, -1, 1, 1)

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        b = shift.to(device=x.device, dtype=x.dtype)
        return aug(x - b, g) + b

    return augment


def split_holdout(x: Tensor, y: Tensor, val_fraction: float, seed: int) -> tuple[tuple[Tensor, Tensor], ...]:
    """``((x_train, y_train), (x_val, y_val))`` with :func:`holdout`'s fixed-seed split."""
    tr, va = holdout(len(y), val_fraction, seed)
    return (x.index_select(0, tr), y.index_select(0, tr)), (x.index_select(0, va), y.index_select(0, va))


def image_bundle(
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor] | None,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    augment: dict[str, Any] | None,
    info: dict[str, Any],
) -> DataBundle:
    """Normalise uint8 ``(N, C, H, W)`` splits and wrap them as a :class:`DataBundle`.

    The augmentation is attached to the train split only.
    """
    aug = image_augment(augment, black_level(mean, std))

    def split(xy: tuple[Tensor, Tensor], a: Augment | None = None) -> TensorSplit:
        return TensorSplit(normalize_images(xy[0], mean, std), xy[1].to(torch.int64), augment=a)

    return DataBundle(
        train=split(train, aug),
        val=split(val),
        test=split(test) if test is not None else None,
        info={**info, "mean": list(mean), "std": list(std)},
    )
