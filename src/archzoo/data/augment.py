"""Batched augmentation: every sample gets its own randomness, no per-sample Python.

Each function takes a batch ``x`` of shape ``(B, C, H, W)`` and a generator,
draws one random number (or offset) per sample in a single call, and applies
them with tensor indexing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from archzoo.data.splits import Augment
from archzoo.errors import UserError


def _rand(n: int, g: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=g).to(device)


def random_flip(x: Tensor, g: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = _rand(x.shape[0], g, x.device) < p  # (B,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: Tensor, g: torch.Generator, padding: int = 4, fill: float = 0.0) -> Tensor:
    """Zero-pad by ``padding`` and cut a random ``H×W`` window per image.

    The window of sample ``b`` starts at ``(dy_b, dx_b)``; a gather over index
    grids built once for the batch cuts all windows at the same time.
    """
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding), value=fill)  # (B, C, H+2p, W+2p)
    off = torch.randint(0, 2 * padding + 1, (2, b), generator=g).to(x.device)
    rows = off[0][:, None] + torch.arange(h, device=x.device)[None, :]  # (B, H)
    cols = off[1][:, None] + torch.arange(w, device=x.device)[None, :]  # (B, W)
    wp = w + 2 * padding
    flat = rows[:, :, None] * wp + cols[:, None, :]  # (B, H, W) indices into the padded plane
    flat = flat.reshape(b, 1, h * w).expand(b, c, h * w)
    out = xp.reshape(b, c, -1).gather(2, flat)  # (B, C, H*W)
    return out.reshape(b, c, h, w).contiguous(memory_format=torch.contiguous_format)


def cutout(x: Tensor, g: torch.Generator, size: int = 8, fill: float = 0.0) -> Tensor:
    """Blank one ``size×size`` square per image at a random centre (DeVries & Taylor 2017)."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=g).to(x.device)
    cx = torch.randint(0, w, (b,), generator=g).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    y0, x0 = cy[:, None] - size // 2, cx[:, None] - size // 2  # top-left corners, (B, 1)
    in_y = (ys >= y0) & (ys < y0 + size)  # (B, H)
    in_x = (xs >= x0) & (xs < x0 + size)  # (B, W)
    mask = in_y[:, :, None] & in_x[:, None, :]  # (B, H, W)
    return x.masked_fill(mask[:, None], fill)


AUGMENT_KEYS = ("crop_padding", "flip", "cutout")


def build_augment(spec: dict[str, Any] | None, fill: float = 0.0) -> Augment | None:
    """Compose the batched augmentations named in ``spec``.

    Args:
        spec: ``{"crop_padding": int, "flip": bool, "cutout": int}``; empty or
            ``None`` means no augmentation.
        fill: the value of padded and cut-out pixels (the normalised zero).
    """
    if not spec:
        return None
    unknown = set(spec) - set(AUGMENT_KEYS)
    if unknown:
        raise UserError(f"Unknown augmentation {', '.join(sorted(unknown))}; use {', '.join(AUGMENT_KEYS)}.")
    pad = int(spec.get("crop_padding", 0) or 0)
    flip = bool(spec.get("flip", False))
    cut = int(spec.get("cutout", 0) or 0)
    if not (pad or flip or cut):
        return None

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        if pad:
            x = random_crop(x, g, pad, fill)
        if flip:
            x = random_flip(x, g)
        if cut:
            x = cutout(x, g, cut, fill)
        return x

    return augment
