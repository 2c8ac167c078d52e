"""Squeeze-and-Excitation: a channel gate computed from globally pooled features."""

from __future__ import annotations

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import get_activation


class SqueezeExcitation(nn.Module):
    r"""The Squeeze-and-Excitation block from Hu et al., `"Squeeze-and-Excitation
    Networks" <https://arxiv.org/abs/1709.01507>`_ (CVPR 2018).

    Each channel is rescaled by a gate computed from the global average of all channels:

    .. math::
        s = \sigma\big(W_2\, \delta(W_1\, \mathrm{GAP}(x) + b_1) + b_2\big), \qquad
        y_c = s_c \, x_c

    where :math:`\delta` is ``act`` and :math:`\sigma` is ``gate``. The two fully connected
    layers are 1x1 convolutions named ``fc1`` and ``fc2``, as in torchvision, so this block
    loads torchvision's MobileNetV3 and EfficientNet weights (EfficientNet uses
    ``act="silu"`` and a squeeze width of a quarter of the block's *input* channels).

    Args:
        channels: channels :math:`C` of the input.
        squeeze_channels: width of the bottleneck; ``None`` uses
            ``max(1, channels // reduction)`` (default None).
        reduction: the ratio :math:`r` between ``channels`` and the bottleneck, used
            only when ``squeeze_channels`` is None (default 16, as in the paper).
        act: activation :math:`\delta` after ``fc1``, a name or module (default ``"relu"``).
        gate: activation :math:`\sigma` producing the scale, a name or module
            (default ``"sigmoid"``; pass ``nn.Hardsigmoid()`` for MobileNetV3).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int | None = None,
        reduction: int = 16,
        act: str | nn.Module = "relu",
        gate: str | nn.Module = "sigmoid",
    ) -> None:
        super().__init__()
        if squeeze_channels is None:
            if reduction < 1:
                raise UserError(f"SqueezeExcitation reduction must be at least 1, got {reduction}.")
            squeeze_channels = max(1, channels // reduction)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = get_activation(act)
        self.scale_activation = get_activation(gate)

    def scale(self, x: Tensor) -> Tensor:
        """The per-channel gate :math:`s`, shape :math:`(B, C, 1, 1)`."""
        s = self.avgpool(x)  # (B, C, 1, 1)
        s = self.activation(self.fc1(s))  # (B, C_squeeze, 1, 1)
        return self.scale_activation(self.fc2(s))  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale(x) * x
