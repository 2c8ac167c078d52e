"""Small helpers shared across the package."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from archzoo.errors import UserError


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``28`` or ``(28, 28)`` -> ``(28, 28)``."""
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(s) for s in image_size)
    return h, w


def downsampled_hw(image_size: int | Sequence[int], levels: int, what: str) -> tuple[int, int]:
    """The resolution after ``levels`` halvings; both sides must divide by ``2**levels``."""
    h, w = image_hw(image_size)
    f = 2**levels
    if h % f or w % f:
        raise UserError(f"{what} needs an image size divisible by {f}; got {h}x{w}.")
    return h // f, w // f


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``.

    A CPU generator can then seed samples of a model that lives on a GPU.
    """
    if generator is None:
        return torch.randn(*shape, device=device)
    return torch.randn(*shape, generator=generator, device=generator.device).to(device)
