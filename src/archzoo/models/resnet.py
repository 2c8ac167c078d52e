"""Residual networks (ResNet): basic and bottleneck blocks, the network, and its variants.

Module and parameter names follow torchvision's ``ResNet`` (``conv1``, ``bn1``,
``layer1``..``layer4``, ``fc``), so its state dicts load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.attention_conv import SpatialGate
from archzoo.layers.checkpoint import CheckpointSequential, GradCheckpointing
from archzoo.layers.init import init_cnn_
from archzoo.layers.se import SqueezeExcitation
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model

STEMS = ("imagenet", "small")


def _block_extra(kind: str | None, channels: int) -> nn.Module:
    """The optional attention applied to a block's residual branch before the addition."""
    if kind is None or kind == "none":
        return nn.Identity()
    if kind == "se":
        return SqueezeExcitation(channels, reduction=16)
    if kind == "spatial":
        return SpatialGate()
    raise UserError(f"Unknown ResNet block_extra '{kind}'; choose one of none, se, spatial.")


class BasicBlock(nn.Module):
    r"""The two-convolution residual block of ResNet-18/34.

    .. math::
        y = \mathrm{ReLU}\big(\mathrm{BN}_2(W_2 * \mathrm{ReLU}(\mathrm{BN}_1(W_1 * x))) + P(x)\big)

    where :math:`P` is the identity, or a strided 1x1 convolution with batch norm
    (``downsample``) when the shape changes.

    Args:
        in_channels: input channels.
        planes: channels of both convolutions; the output has ``planes * expansion``.
        stride: stride of the first convolution (default 1).
        downsample: the projection :math:`P`, or None for the identity (default None).
        extra: attention on the residual branch, ``"se"`` or ``"spatial"`` (default None).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{planes}, H / s, W / s)`.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        extra: str | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.extra = _block_extra(extra, planes)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.extra(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    r"""The 1x1-3x3-1x1 residual block of ResNet-50 and deeper, with the stride on the
    3x3 convolution (ResNet v1.5, as in torchvision).

    .. math::
        y = \mathrm{ReLU}\big(\mathrm{BN}_3(W_3 * \mathrm{ReLU}(\mathrm{BN}_2(W_2 *
            \mathrm{ReLU}(\mathrm{BN}_1(W_1 * x))))) + P(x)\big)

    Args:
        in_channels: input channels.
        planes: channels of the 1x1 and 3x3 convolutions; the output has
            ``planes * expansion`` (expansion 4).
        stride: stride of the 3x3 convolution (default 1).
        downsample: the projection :math:`P`, or None for the identity (default None).
        extra: attention on the residual branch, ``"se"`` or ``"spatial"`` (default None).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, 4\,\text{planes}, H / s, W / s)`.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        extra: str | None = None,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.extra = _block_extra(extra, out_channels)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.extra(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


class ResNet(GradCheckpointing, ImageClassifier):
    r"""The residual network from He et al., `"Deep Residual Learning for Image
    Recognition" <https://arxiv.org/abs/1512.03385>`_ (CVPR 2016).

    A stem, then stages ``layer1``, ``layer2``, ... of residual blocks
    :math:`x_{l+1} = \mathrm{ReLU}(F(x_l) + P(x_l))`, each stage after the first halving
    the resolution, then global average pooling and a linear head ``fc``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: number of blocks in each stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        num_classes: classes of the head (default 1000).
        in_channels: channels of the input image (default 3).
        stem: ``"imagenet"``: 7x7 stride-2 convolution and a 3x3 stride-2 max pool
            (stride 4, for 224 px images); ``"small"``: a 3x3 stride-1 convolution and no
            pool, for 28-32 px images (default ``"imagenet"``).
        widths: ``planes`` of each stage; the stem has ``widths[0]`` channels
            (default ``(64, 128, 256, 512)``).
        zero_init_residual: set the last batch norm's weight :math:`\gamma` of every block
            to zero so that each block starts as the identity (default False).
        block_extra: ``"se"`` inserts squeeze-and-excitation (SE-ResNet, reduction 16),
            ``"spatial"`` a CBAM spatial gate, on each residual branch before the
            addition (default None).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``fc`` (``classifier_name``); ``stages`` lists
    ``layer1``.. in order. ``set_grad_checkpointing(True)`` recomputes each residual block
    in the backward pass (:mod:`archzoo.layers.checkpoint`).
    """

    classifier_name = "fc"
    stage_prefix = "layer"

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
        widths: Sequence[int] = (64, 128, 256, 512),
        zero_init_residual: bool = False,
        block_extra: str | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths) or not layers:
            raise UserError(f"ResNet needs one width per stage; got layers={list(layers)}, widths={list(widths)}.")
        if stem not in STEMS:
            raise UserError(f"Unknown ResNet stem '{stem}'; choose one of {', '.join(STEMS)}.")
        self.in_channels = in_channels
        stem_width = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_width, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)

        channels = stem_width
        self.num_stages = len(layers)
        for i, (n, planes) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if i == 0 else 2
            out_channels = planes * block.expansion
            downsample = None
            if stride != 1 or channels != out_channels:
                downsample = nn.Sequential(
                    nn.Conv2d(channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
                )
            blocks = [block(channels, planes, stride, downsample, block_extra)]
            blocks += [block(out_channels, planes, extra=block_extra) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", CheckpointSequential(*blocks))
            channels = out_channels

        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

        init_cnn_(self, linear=None)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    @property
    def stages(self) -> list[nn.Module]:
        """The residual stages ``layer1``.. in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


# What every ResNet variant accepts; the defaults are ResNet's.
RESNET_ARGS = ("num_classes", "in_channels", "stem", "zero_init_residual", "block_extra")


@register_model()
@variant(ResNet, RESNET_ARGS)
def resnet10(**kwargs: Any) -> ResNet:
    """ResNet-10: one basic block per stage, a light model for small images (``stem="small"``)."""
    return ResNet(BasicBlock, (1, 1, 1, 1), **kwargs)


@register_model()
@variant(ResNet, RESNET_ARGS)
def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model()
@variant(ResNet, RESNET_ARGS)
def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


@register_model()
@variant(ResNet, RESNET_ARGS)
def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model()
@variant(ResNet, RESNET_ARGS, num_classes=10, stem="small")
def resnet20(**kwargs: Any) -> ResNet:
    """ResNet-20 for CIFAR-sized images (He et al. 2016, section 4.2): three stages of three
    basic blocks with 16, 32 and 64 channels, 10 classes and the small stem by default.
    Shortcuts that change shape are 1x1 projections (the paper's option B) rather than zero
    padding."""
    return ResNet(BasicBlock, (3, 3, 3), widths=(16, 32, 64), **kwargs)
