"""Dynamic convolution: a per-input mixture of K convolution kernels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import get_activation


class KernelAttention(nn.Module):
    r"""The attention over kernels of dynamic convolution.

    .. math::
        z = W_2\, \mathrm{ReLU}(W_1\, \mathrm{GAP}(x) + b_1) + b_2, \qquad
        \pi_k(x) = \frac{\exp(z_k / \tau)}{\sum_j \exp(z_j / \tau)}

    The temperature :math:`\tau` flattens the distribution: the paper starts at
    :math:`\tau = 30` (every kernel is trained at first) and anneals it to 1. It is a
    buffer, so checkpoints, resume and loaded runs carry the value reached.

    Args:
        in_channels: channels of the input.
        num_kernels: number of kernels :math:`K`.
        hidden: width of the hidden layer.
        temperature: softmax temperature :math:`\tau` (default 30).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, K)` whose rows sum to 1.
    """

    def __init__(self, in_channels: int, num_kernels: int, hidden: int, temperature: float = 30.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, num_kernels)
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, x: Tensor) -> Tensor:
        z = x.mean(dim=(2, 3))  # (B, C) global average pool
        z = self.fc2(self.relu(self.fc1(z)))  # (B, K)
        return torch.softmax(z / self.temperature, dim=1)


class DynamicConv2d(nn.Module):
    r"""Dynamic convolution from Chen et al., `"Dynamic Convolution: Attention over
    Convolution Kernels" <https://arxiv.org/abs/1912.03458>`_ (CVPR 2020).

    The layer holds :math:`K` kernels and mixes them with attention weights computed
    from each input, so every sample is convolved with its own kernel:

    .. math::
        \tilde W(x) = \sum_{k=1}^{K} \pi_k(x)\, W_k, \qquad
        \tilde b(x) = \sum_{k=1}^{K} \pi_k(x)\, b_k, \qquad
        y = \tilde W(x) * x + \tilde b(x)

    with :math:`\pi(x)` from :class:`KernelAttention`. The per-sample convolutions run
    as one grouped convolution: the batch is folded into the channel axis and each
    sample's mixed kernel becomes one group, so there is no loop over samples.
    With :math:`K = 1` the layer is an ordinary convolution.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (default 3).
        stride: stride (default 1).
        padding: padding; ``None`` keeps the spatial size at stride 1 (default None).
        dilation: dilation (default 1).
        groups: convolution groups (default 1).
        bias: learn a bias per kernel (default True).
        num_kernels: number of kernels :math:`K` (default 4, as in the paper).
        reduction: ``in_channels`` over the attention's hidden width (default 4);
            the hidden width is at least 4.
        temperature: initial softmax temperature :math:`\tau` (default 30); change
            it with :meth:`set_temperature`.

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
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        num_kernels: int = 4,
        reduction: int = 4,
        temperature: float = 30.0,
    ) -> None:
        super().__init__()
        if num_kernels < 1:
            raise UserError(f"DynamicConv2d needs at least one kernel, got num_kernels={num_kernels}.")
        if in_channels % groups or out_channels % groups:
            raise UserError(f"DynamicConv2d channels ({in_channels}, {out_channels}) must divide by groups={groups}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = (kernel_size - 1) // 2 * dilation if padding is None else padding
        self.dilation = dilation
        self.groups = groups
        self.num_kernels = num_kernels
        self.weight = nn.Parameter(
            torch.empty(num_kernels, out_channels, in_channels // groups, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(num_kernels, out_channels)) if bias else None
        self.attention = KernelAttention(in_channels, num_kernels, max(4, in_channels // reduction), temperature)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise each of the K kernels as ``nn.Conv2d`` initialises its one kernel."""
        fan_in = self.weight[0, 0].numel()
        for k in range(self.num_kernels):
            nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5))
            if self.bias is not None:
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(self.bias[k], -bound, bound)

    def set_temperature(self, temperature: float) -> None:
        """Set the attention's softmax temperature (anneal it from 30 to 1 early in training)."""
        self.attention.temperature.fill_(float(temperature))

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        pi = self.attention(x)  # (B, K)
        # W~(x) = sum_k pi_k W_k, one mixed kernel per sample
        weight = (pi @ self.weight.flatten(1)).view(B * self.out_channels, C // self.groups, *self.weight.shape[-2:])
        bias = (pi @ self.bias).flatten() if self.bias is not None else None  # (B * C_out,)
        y = F.conv2d(
            x.reshape(1, B * C, H, W),  # (1, B * C_in, H, W): the batch folded into channels
            weight,  # (B * C_out, C_in / groups, k, k)
            bias,
            self.stride,
            self.padding,
            self.dilation,
            groups=B * self.groups,
        )  # (1, B * C_out, H', W')
        return y.view(B, self.out_channels, y.shape[-2], y.shape[-1])  # (B, C_out, H', W')

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, groups={self.groups}, num_kernels={self.num_kernels}, "
            f"bias={self.bias is not None}"
        )


class DynamicConvBNAct(nn.Sequential):
    r"""Dynamic convolution, batch norm and activation, the dynamic counterpart of
    :class:`~archzoo.layers.ConvBNAct`: :math:`y = \mathrm{act}(\mathrm{BN}(\tilde W(x) * x))`.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (default 3).
        stride: stride (default 1).
        groups: convolution groups (default 1).
        act: activation name (default ``"relu"``).
        num_kernels: kernels :math:`K` of the dynamic convolution (default 4).
        temperature: initial attention temperature (default 30).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, H', W')`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
        num_kernels: int = 4,
        temperature: float = 30.0,
    ) -> None:
        super().__init__(
            DynamicConv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                groups=groups,
                bias=False,
                num_kernels=num_kernels,
                temperature=temperature,
            ),
            nn.BatchNorm2d(out_channels),
            get_activation(act),
        )
