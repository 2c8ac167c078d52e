"""Spatially gated convolution: conv features reweighted by a learned spatial attention map."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.conv import ConvBNAct


class SpatialGate(nn.Module):
    r"""The spatial attention of CBAM, from Woo et al., `"CBAM: Convolutional Block
    Attention Module" <https://arxiv.org/abs/1807.06521>`_ (ECCV 2018).

    The channel axis is summarised by its mean and its maximum at every position, a
    :math:`k \times k` convolution turns the two maps into one, and a sigmoid makes it a
    gate in :math:`(0, 1)` that multiplies every channel:

    .. math::
        M(x) = \sigma\big(f^{k \times k}([\mathrm{mean}_c(x);\ \max_c(x)])\big), \qquad
        y = M(x) \odot x

    Args:
        kernel_size: odd size :math:`k` of the convolution over the two pooled maps
            (default 7, as in the paper).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, C, H, W)`;
        :meth:`attention_map` returns :math:`(B, 1, H, W)`.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise UserError(f"SpatialGate kernel_size must be odd to keep the size, got {kernel_size}.")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention_map(self, x: Tensor) -> Tensor:
        """The gate :math:`M(x)` with values in (0, 1), shape :math:`(B, 1, H, W)`."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.conv(pooled))  # (B, 1, H, W)

    def forward(self, x: Tensor) -> Tensor:
        return self.attention_map(x) * x


class SpatialAttentionConv2d(nn.Module):
    r"""A convolution whose output is gated by a spatial attention map: convolution,
    batch norm and activation (:class:`~archzoo.layers.ConvBNAct`), then a CBAM
    :class:`SpatialGate`.

    .. math::
        h = \mathrm{act}(\mathrm{BN}(W * x)), \qquad
        y = \sigma\big(f^{k \times k}([\mathrm{mean}_c(h);\ \max_c(h)])\big) \odot h

    The gate lets the block suppress background positions; :meth:`attention_map`
    exposes it for visualisation. (This is a CBAM-style spatial gate, not Bello et al.'s
    attention-augmented convolution, which concatenates self-attention features.)

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel of the main convolution (default 3).
        stride: stride of the main convolution (default 1).
        act: activation after batch norm (default ``"relu"``).
        gate_kernel_size: kernel of the gate's convolution (default 7).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, H', W')`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: str | None = "relu",
        gate_kernel_size: int = 7,
    ) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, kernel_size, stride, act=act)
        self.gate = SpatialGate(gate_kernel_size)

    def attention_map(self, x: Tensor) -> Tensor:
        """The spatial gate applied to this block's features, shape :math:`(B, 1, H', W')`."""
        return self.gate.attention_map(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(self.conv(x))
