"""Convolution blocks shared by the CNN families."""

from __future__ import annotations

from torch import Tensor, nn

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
