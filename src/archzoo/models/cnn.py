"""Small convolutional networks: LeNet-5 and a VGG-style ConvBlock CNN.

LeNet-5 (LeCun et al. 1998, http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf):
two 5×5 convolutions with subsampling, then three fully connected layers.

ConvNet: VGG-style blocks (Simonyan & Zisserman 2015, https://arxiv.org/abs/1409.1556)
of ``convs_per_block`` 3×3 conv-BN-ReLU layers and a 2×2 max-pool, then global
average pooling and a linear head — a compact net for 8–32 px images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import get_activation
from archzoo.layers.conv import ConvBNAct
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model


class LeNet5(ImageClassifier):
    """LeNet-5 with modern defaults (max-pool, ReLU) or the original (avg-pool, tanh).

    Args:
        in_channels: input channels (default 1).
        num_classes: classes (default 10).
        image_size: input height = width; 28 gets padding 2 on the first conv as in the
            classic MNIST set-up, 32 none (default 28).
        act: activation (default ``"relu"``; ``"tanh"`` for the original).
        pool: ``"max"`` or ``"avg"`` (default ``"max"``).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, \\text{classes})`.

    The head is the attribute ``classifier`` (``classifier_name``: the three fully connected
    layers); ``stages`` lists ``conv1`` and ``conv2``.
    """

    has_stem = False
    stage_prefix = "conv"

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, act: str = "relu", pool: str = "max"
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.example_hw = (image_size, image_size)  # the head's width depends on it
        pad = 2 if image_size < 32 else 0
        Pool = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=pad), get_activation(act), Pool(2))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5), get_activation(act), Pool(2))
        with torch.no_grad():
            n = self.conv2(self.conv1(torch.zeros(1, in_channels, image_size, image_size))).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n, 120),
            get_activation(act),
            nn.Linear(120, 84),
            get_activation(act),
            nn.Linear(84, num_classes),
        )

    @property
    def stages(self) -> list[nn.Module]:
        return [self.conv1, self.conv2]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


class ConvNet(ImageClassifier):
    """VGG-style CNN: blocks of 3×3 conv-BN-act, max-pool between blocks, GAP and a linear head.

    Args:
        in_channels: input channels (default 1).
        num_classes: classes (default 10).
        channels: output channels of each block (default ``(32, 64, 128)``).
        convs_per_block: conv layers per block (default 2).
        act: activation (default ``"relu"``).
        dropout: dropout before the head (default 0).
        pool_last: max-pool after the last block too (default False).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, \\text{classes})`.

    The head is the attribute ``classifier`` (``classifier_name``); ``stages`` lists the blocks.
    """

    has_stem = False
    stage_prefix = "block"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64, 128),
        convs_per_block: int = 2,
        act: str = "relu",
        dropout: float = 0.0,
        pool_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        blocks: list[nn.Module] = []
        c_in = in_channels
        for i, c in enumerate(channels):
            layers: list[nn.Module] = []
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for j in range(convs_per_block):
                layers.append(ConvBNAct(c_in if j == 0 else c, c, 3, act=act))
            c_in = c
            blocks.append(nn.Sequential(*layers))
        if pool_last:
            blocks[-1].append(nn.MaxPool2d(2))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout) if dropout > 0 else nn.Identity(), nn.Linear(c_in, num_classes)
        )

    @property
    def stages(self) -> list[nn.Module]:
        return list(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.forward_features(x)))


class PoolFirstBlock(nn.Sequential):
    r"""3×3 convolution, 2×2 max-pool, batch norm, activation: :math:`y = \mathrm{act}(\mathrm{BN}(\mathrm{pool}(W * x)))`.

    Pooling before the normalisation gives the network the same function class as
    conv-BN-act-pool up to BN's sign (max-pool commutes with any increasing map), while
    batch norm, the activation and their backward passes touch a quarter of the values.
    On two CPU cores these memory-bound passes cost about as much as the convolutions.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        act: activation name (default ``"relu"``).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, \lfloor H/2 \rfloor, \lfloor W/2 \rfloor)`.
    """

    def __init__(self, in_channels: int, out_channels: int, act: str = "relu") -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(out_channels),
            get_activation(act),
        )


class FastConvNet(ImageClassifier):
    """Pool-first conv blocks and a linear head on the flattened last map (no global pooling).

    Every block halves the resolution (:class:`PoolFirstBlock`); after three blocks a
    28×28 image is a 3×3 map, and the head sees its positions rather than their average,
    which learns faster than a pooled head in a few epochs.

    Args:
        in_channels: input channels (default 1).
        num_classes: classes (default 10).
        channels: output channels of each block (default ``(16, 32, 64)``).
        image_size: input height = width; the head's width depends on it (default 28).
        act: activation (default ``"relu"``).

    Shapes:
        input :math:`(B, C, H, W)`, output :math:`(B, \text{classes})`.

    The head is the attribute ``classifier``; ``stages`` lists the blocks.
    """

    has_stem = False
    stage_prefix = "block"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        channels: Sequence[int] = (16, 32, 64),
        image_size: int = 28,
        act: str = "relu",
    ) -> None:
        super().__init__()
        if not channels:
            raise UserError("FastConvNet needs at least one block in channels.")
        side = image_size >> len(channels)  # each block floors the side by 2
        if side < 1:
            raise UserError(f"{len(channels)} blocks halve a {image_size}px image below one pixel; use fewer.")
        self.in_channels = in_channels
        self.example_hw = (image_size, image_size)
        self.num_features = channels[-1]
        c_in = in_channels
        blocks = []
        for c in channels:
            blocks.append(PoolFirstBlock(c_in, c, act))
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.avgpool = nn.Identity()  # the head takes the whole map
        self.classifier = nn.Linear(c_in * side * side, num_classes)

    @property
    def stages(self) -> list[nn.Module]:
        return list(self.blocks)


@register_model("lenet5")
@variant(LeNet5, ("in_channels", "num_classes", "image_size", "act", "pool"))
def lenet5(**kwargs: Any) -> LeNet5:
    return LeNet5(**kwargs)


@register_model("convnet")
@variant(ConvNet, ("in_channels", "num_classes", "channels", "convs_per_block", "act", "dropout", "pool_last"))
def convnet(**kwargs: Any) -> ConvNet:
    return ConvNet(**kwargs)


@register_model("convnet_small")
@variant(ConvNet, ("in_channels", "num_classes", "dropout"), dropout=0.1)
def convnet_small(**kwargs: Any) -> ConvNet:
    """Under 100K parameters (86,430 at 1 channel, 10 classes): blocks of 20, 40 and 64 channels."""
    return ConvNet(channels=(20, 40, 64), convs_per_block=2, act="relu", **kwargs)


@register_model("convnet_fast")
@variant(FastConvNet, ("in_channels", "num_classes", "channels", "image_size", "act"))
def convnet_fast(**kwargs: Any) -> FastConvNet:
    """29,178 parameters at 1 channel, 28 px, 10 classes: pool-first blocks of 16, 32 and 64 channels."""
    return FastConvNet(**kwargs)
