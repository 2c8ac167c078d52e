r"""The convolutional LSTM cell (Shi et al. 2015, https://arxiv.org/abs/1506.04214).

An LSTM whose input-to-state and state-to-state maps are convolutions, so the state
keeps the frame's spatial layout :math:`(B, C_h, H, W)`:

.. math::
    [i, f, g, o] = W * [x_t, h_{t-1}] + b, \qquad
    c_t = \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g), \qquad
    h_t = \sigma(o) \odot \tanh(c_t)

with :math:`*` a 2-D convolution over the concatenated input and hidden channels
(one convolution for all four gates; the peephole terms of the paper are left out,
as in most implementations).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step.

    Args:
        in_channels: channels of the input frame :math:`C_x`.
        hidden_channels: channels of the state :math:`C_h`.
        kernel_size: odd kernel of the gate convolution (default 3; padding keeps H, W).

    Shapes:
        x :math:`(B, C_x, H, W)`; state ``(h, c)`` each :math:`(B, C_h, H, W)`; returns the new ``(h, c)``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd so the state keeps the frame's size")
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )

    def initial_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = x.shape
        z = x.new_zeros(b, self.hidden_channels, h, w)
        return z, z

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        h, c = state if state is not None else self.initial_state(x)
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)  # each (B, C_h, H, W)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c
