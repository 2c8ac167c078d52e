"""Every model declares its own example input: ``model(*model.example_input(batch_size))`` runs.

``example_input(batch_size=2)`` returns the tuple of positional arguments that
``forward`` takes, random but valid, on the device of the model's parameters: one
image batch for a CNN, ``(z, labels)`` for a GAN, ``(x_t, t, labels)`` for a
denoiser, a ``(B, D)`` batch for an MLP or a 2-D flow. A model whose forward takes
token ids returns a LongTensor ``(B, T)`` below its vocabulary size, a graph model a
PyG ``Batch``: the registry-driven test (``tests/models/test_all_models.py``), which
runs forward and backward on every registered model, needs nothing else.

Models that take one batch of images inherit :class:`ImageInput` and set ``x_shape``
(models built for one image size) or ``in_channels`` and, when they need it, ``example_hw``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def param_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter or buffer (CPU when it has none)."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def random_images(
    shape: Sequence[int], value_range: Sequence[float] | None = None, device: torch.device | str = "cpu"
) -> Tensor:
    """Images of ``shape``: uniform in ``value_range`` (a generative model's ``data_range``), else standard normal
    (normalised inputs)."""
    if value_range is None:
        return torch.randn(*shape, device=device)
    lo, hi = value_range
    return lo + (hi - lo) * torch.rand(*shape, device=device)


class ImageInput:
    """``example_input`` for a model whose forward takes one image batch :math:`(B, C, H, W)`.

    The shape is the model's ``x_shape`` :math:`(C, H, W)` when it was built for one image
    size (autoencoders, VAEs, flows), else ``(in_channels, *example_hw)``.

    Attributes:
        in_channels: :math:`C`, set by the model.
        example_hw: :math:`(H, W)` (default 32x32, which every classifier stem takes).
    """

    in_channels: int
    example_hw: tuple[int, int] = (32, 32)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor]:
        """``(images,)`` of shape :math:`(B, C, H, W)`, in the model's ``data_range`` when it has one."""
        shape = getattr(self, "x_shape", None) or (self.in_channels, *self.example_hw)
        device = param_device(self)  # type: ignore[arg-type]
        return (random_images((batch_size, *shape), getattr(self, "data_range", None), device),)
