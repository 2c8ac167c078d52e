"""Convolution blocks shared by the model families: conv-BN-act, and the strided stacks that halve
or double a resolution (autoencoders, VAEs, GAN generators)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import get_activation


class ConvBNAct(nn.Sequential):
    r"""Convolution, batch norm and activation: :math:`y = \mathrm{act}(\mathrm{BN}(W * x))`.

    The convolution has no bias when batch norm follows, since BN's shift absorbs it.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (default 3).
        stride: stride (default 1).
        padding: padding; ``None`` keeps the spatial size at stride 1 (default None).
        groups: convolution groups; ``groups=in_channels`` is depthwise (default 1).
        act: activation name (default ``"relu"``).
        norm: use batch norm (default True).
        dilation: dilation (default 1).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, H', W')`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        act: str | None = "relu",
        norm: bool = True,
        dilation: int = 1,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=not norm
            )
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        if act not in (None, "none", "identity"):
            layers.append(get_activation(act))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - nn.Sequential semantics
        return super().forward(x)


def conv_encoder(in_channels: int, channels: Sequence[int], act: str = "relu", norm: bool = True) -> nn.Sequential:
    """Stride-2 4x4 convolutions, each halving the resolution: ``(B, C, H, W) -> (B, channels[-1], H/2^k, W/2^k)``."""
    layers: list[nn.Module] = []
    c = in_channels
    for i, ch in enumerate(channels):
        # No norm on the first layer: it sees raw pixels (as in DCGAN).
        layers.append(ConvBNAct(c, ch, kernel_size=4, stride=2, padding=1, act=act, norm=norm and i > 0))
        c = ch
    return nn.Sequential(*layers)


def up_block(
    in_channels: int, out_channels: int, act: str = "relu", norm: bool = True, mode: str = "transposed"
) -> nn.Sequential:
    """Double the resolution: a 4x4 stride-2 transposed conv, or nearest upsampling and a 3x3 conv."""
    if mode == "transposed":
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=not norm)]
    elif mode in ("nearest", "upsample"):
        layers = [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=not norm),
        ]
    else:
        raise UserError(f"Unknown upsampling '{mode}'; choose transposed or nearest.")
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    if act not in (None, "none", "identity"):
        layers.append(get_activation(act))
    return nn.Sequential(*layers)


def conv_decoder(out_channels: int, channels: Sequence[int], act: str = "relu", norm: bool = True) -> nn.Sequential:
    """Transposed convolutions mirroring :func:`conv_encoder`; the last one maps to ``out_channels`` without norm/act."""
    layers: list[nn.Module] = []
    rev = list(channels)[::-1]  # e.g. (64, 32)
    for i, ch in enumerate(rev):
        last = i == len(rev) - 1
        nxt = out_channels if last else rev[i + 1]
        layers.append(up_block(ch, nxt, act=None if last else act, norm=norm and not last))
    return nn.Sequential(*layers)
