r"""ConvLSTM next-frame prediction (Shi et al. 2015, https://arxiv.org/abs/1506.04214).

A stack of :class:`~archzoo.layers.convlstm.ConvLSTMCell` reads the frames
:math:`x_1..x_T` and a :math:`1 \times 1` convolution of the top state after the last
frame predicts :math:`x_{T+1}`. With ``residual=True`` (the default) it predicts the change
from the last frame, :math:`\hat x_{T+1} = \mathrm{clamp}(x_T + \tanh(W h_T), 0, 1)`, so
an untrained model starts as the copy-the-last-frame baseline instead of a grey frame
(trained from scratch on sparse frames, a sigmoid output first collapses to the mean).

With ``patch=p`` the frames are cut into :math:`p \times p` patches stacked as channels
before the recurrence, :math:`(C, H, W) \to (C p^2, H/p, W/p)` (``pixel_unshuffle``), and the
prediction is put back the same way (``pixel_shuffle``), as Shi et al. do for Moving MNIST
(64×64 frames as 16×16 grids of 4×4 patches): the state has :math:`p^2` times fewer
positions, so the same compute buys wider states, and a 3×3 gate kernel sees
:math:`3p \times 3p` pixels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.convlstm import ConvLSTMCell
from archzoo.models._variant import variant
from archzoo.registry import register_model


class ConvLSTMPredictor(nn.Module):
    """Frames in, the next frame out.

    Args:
        in_channels: channels per frame (default 1).
        hidden_channels: channels of each layer's state, one entry per layer (default ``(32, 32)``).
        kernel_size: gate convolution kernel (default 3).
        frames: the number of input frames of its example input (default 9).
        image_size: the frame size of its example input (default 32).
        residual: predict the change from the last frame (default True) instead of the frame.
        patch: the side of the square patches stacked as channels (default 1: none);
            ``image_size`` must be a multiple of it.

    Shapes:
        input :math:`(B, T, C, H, W)`; output :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden_channels: tuple[int, ...] = (32, 32),
        kernel_size: int = 3,
        frames: int = 9,
        image_size: int = 32,
        residual: bool = True,
        patch: int = 1,
    ) -> None:
        super().__init__()
        if patch < 1 or image_size % patch:
            raise UserError(f"model.args.patch must be a positive divisor of image_size={image_size}, got {patch}.")
        self.residual = residual
        self.patch = patch
        widths = (in_channels * patch * patch, *hidden_channels)
        self.cells = nn.ModuleList(
            ConvLSTMCell(a, b, kernel_size) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.head = nn.Conv2d(widths[-1], widths[0], 1)
        self.in_channels, self.frames, self.image_size = in_channels, frames, image_size

    def forward_features(self, x: Tensor) -> Tensor:
        """The top layer's state after the last frame, :math:`(B, C_h, H, W)`."""
        states: list[tuple[Tensor, Tensor] | None] = [None] * len(self.cells)
        if self.patch > 1:  # (B, T, C, H, W) -> (B, T, C p^2, H/p, W/p)
            b, t = x.shape[:2]
            x = F.pixel_unshuffle(x.flatten(0, 1), self.patch).unflatten(0, (b, t))
        for t in range(x.shape[1]):  # the recurrence over time; each step is batched convolutions
            inp = x[:, t]  # (B, C, H, W)
            for k, cell in enumerate(self.cells):
                states[k] = cell(inp, states[k])
                inp = states[k][0]
        return inp

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.forward_features(x))  # (B, C p^2, H/p, W/p)
        if self.patch > 1:
            out = F.pixel_shuffle(out, self.patch)  # (B, C, H, W)
        if self.residual:
            return (x[:, -1] + torch.tanh(out)).clamp(0.0, 1.0)  # the last frame, moved
        return torch.sigmoid(out)  # in [0, 1]

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, ...]:
        """Random frames :math:`(B, T, C, H, W)` in [0, 1]."""
        g = torch.Generator().manual_seed(0)
        shape = (batch_size, self.frames, self.in_channels, self.image_size, self.image_size)
        return (torch.rand(*shape, generator=g).to(self.head.weight.device),)


@register_model("convlstm")
@variant(
    ConvLSTMPredictor, ("in_channels", "hidden_channels", "kernel_size", "frames", "image_size", "residual", "patch")
)
def convlstm(**kwargs: Any) -> ConvLSTMPredictor:
    """Two ConvLSTM layers of 32 channels (by default) and a 1×1 prediction of the next frame."""
    kwargs["hidden_channels"] = tuple(kwargs["hidden_channels"])  # a YAML list from a recipe
    return ConvLSTMPredictor(**kwargs)
