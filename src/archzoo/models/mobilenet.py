"""MobileNets: depthwise-separable convolutions (V1) and inverted residuals (V2).

MobileNetV2's module names follow torchvision's ``MobileNetV2`` (a flat ``features``
sequence, ``classifier``), so its state dicts load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.conv import ConvBNAct
from archzoo.layers.init import init_cnn_, normal_linear_
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model

STEMS = ("imagenet", "small")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a scaled channel count to the nearest multiple of ``divisor``, never going
    below ``min_value`` (default ``divisor``) nor more than 10% below ``value`` (the rule
    of the TensorFlow MobileNet reference, also used by EfficientNet)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _check(stem: str, width_mult: float, name: str) -> None:
    if stem not in STEMS:
        raise UserError(f"Unknown {name} stem '{stem}'; choose one of {', '.join(STEMS)}.")
    if width_mult <= 0:
        raise UserError(f"{name} width_mult must be positive, got {width_mult}.")


class StagedFeaturesNet(ImageClassifier):
    """The interface shared by the MobileNets and EfficientNet: a flat ``features``
    sequence whose first module is the stem, ``avgpool``, and a ``classifier`` sequence
    ending in a linear layer; subclasses set ``_bounds``, the ``[start, end)`` slice of
    ``features`` for each stage."""

    features: nn.Sequential
    classifier: nn.Sequential
    _bounds: list[tuple[int, int]]

    @property
    def stem(self) -> nn.Module:
        """The first module of ``features``."""
        return self.features[0]

    @property
    def stages(self) -> list[nn.Module]:
        """The stages after the stem in order, each a slice of ``features`` (the MobileNets
        start one wherever the resolution halves, EfficientNet one per MBConv group); the
        last one holds the final 1x1 convolution."""
        return [self.features[a:b] for a, b in self._bounds]

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)  # (B, C_last, H', W')


def _stage_bounds(strides: Sequence[int]) -> list[tuple[int, int]]:
    """Split blocks ``features[1:]`` into stages, starting a new one at every stride-2 block."""
    bounds: list[tuple[int, int]] = []
    start = 1
    for i, s in enumerate(strides, start=1):
        if s == 2 and i > start:
            bounds.append((start, i))
            start = i
    bounds.append((start, len(strides) + 1))
    return bounds


class DepthwiseSeparable(nn.Sequential):
    r"""A depthwise 3x3 convolution followed by a pointwise 1x1 convolution, each with
    batch norm and ReLU: :math:`y = \mathrm{ReLU}(\mathrm{BN}(W_{pw} *
    \mathrm{ReLU}(\mathrm{BN}(W_{dw} \circledast x))))`, where :math:`\circledast` convolves
    each channel with its own filter.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the depthwise convolution (default 1).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, H / s, W / s)`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
        )


class MobileNetV1(StagedFeaturesNet):
    r"""MobileNetV1 from Howard et al., `"MobileNets: Efficient Convolutional Neural
    Networks for Mobile Vision Applications" <https://arxiv.org/abs/1704.04861>`_ (2017).

    A 3x3 convolution, then 13 :class:`DepthwiseSeparable` blocks, global average pooling
    and a linear classifier. A depthwise-separable block costs
    :math:`k^2 C_{in} + C_{in} C_{out}` multiply-adds per position instead of
    :math:`k^2 C_{in} C_{out}`. The width multiplier :math:`\alpha` scales every layer's
    channels (rounded to a multiple of 8).

    Args:
        num_classes: classes of the head (default 1000).
        in_channels: channels of the input image (default 3).
        width_mult: width multiplier :math:`\alpha` (default 1.0).
        dropout: dropout before the linear layer (default 0.0).
        stem: ``"imagenet"``: overall stride 32 for 224 px images; ``"small"``: the stem
            and the first stride-2 block use stride 1 (overall stride 8), for 28-32 px
            images (default ``"imagenet"``).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``classifier`` (dropout, linear); ``features[0]`` is the
    stem and ``stages`` lists five stages, one per resolution.
    """

    # (output channels, stride) of the depthwise-separable blocks
    BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.0,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        _check(stem, width_mult, "MobileNetV1")
        self.in_channels = in_channels
        small = stem == "small"
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, 1 if small else 2)]
        strides = []
        for i, (c, s) in enumerate(self.BLOCKS):
            out = make_divisible(c * width_mult)
            layers.append(DepthwiseSeparable(channels, out, 1 if (small and i == 1) else s))
            strides.append(s)  # stage boundaries as for "imagenet"
            channels = out
        self.features = nn.Sequential(*layers)
        self._bounds = _stage_bounds(strides)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
        init_cnn_(self, normal_linear_)


class InvertedResidual(nn.Module):
    r"""The inverted residual block of MobileNetV2: expand with a 1x1 convolution,
    filter with a depthwise 3x3, project back with a linear 1x1 (no activation), and add
    the input when the shape is unchanged.

    .. math::
        y = x\,[s = 1,\ C_{in} = C_{out}] + \mathrm{BN}(W_{proj} *
            \mathrm{ReLU6}(\mathrm{BN}(W_{dw} \circledast
            \mathrm{ReLU6}(\mathrm{BN}(W_{exp} * x)))))

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the depthwise convolution, 1 or 2.
        expand_ratio: expansion factor :math:`t` of the hidden width; 1 skips the
            expansion convolution.

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, H / s, W / s)`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise UserError(f"InvertedResidual stride must be 1 or 2, got {stride}.")
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, act="relu6"))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(StagedFeaturesNet):
    r"""MobileNetV2 from Sandler et al., `"MobileNetV2: Inverted Residuals and Linear
    Bottlenecks" <https://arxiv.org/abs/1801.04381>`_ (CVPR 2018).

    A 3x3 stride-2 convolution, 17 :class:`InvertedResidual` blocks in seven groups
    :math:`(t, c, n, s)` (expansion, channels, repeats, first stride), a 1x1 convolution
    to 1280 channels, global average pooling, dropout and a linear layer. The width
    multiplier scales every width (rounded to a multiple of 8) except that the last
    convolution never shrinks below 1280.

    Args:
        num_classes: classes of the head (default 1000).
        in_channels: channels of the input image (default 3).
        width_mult: width multiplier (default 1.0).
        dropout: dropout before the linear layer (default 0.2).
        stem: ``"imagenet"``: overall stride 32 for 224 px images; ``"small"``: the stem
            and the 24-channel group use stride 1 (overall stride 8), for 28-32 px images
            (default ``"imagenet"``).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``classifier`` (dropout, linear); ``features[0]`` is the
    stem and ``stages`` lists five stages, one per resolution.
    """

    # (expansion t, output channels c, repeats n, first stride s)
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        _check(stem, width_mult, "MobileNetV2")
        self.in_channels = in_channels
        small = stem == "small"
        channels = make_divisible(32 * width_mult)
        last_channels = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, 1 if small else 2, act="relu6")]
        strides = []
        for g, (t, c, n, s) in enumerate(self.SETTINGS):
            out = make_divisible(c * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                layers.append(InvertedResidual(channels, out, 1 if (small and g == 1) else stride, t))
                strides.append(stride)  # stage boundaries as for "imagenet"
                channels = out
        layers.append(ConvBNAct(channels, last_channels, 1, act="relu6"))
        strides.append(1)
        self.features = nn.Sequential(*layers)
        self._bounds = _stage_bounds(strides)
        self.num_features = last_channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))
        init_cnn_(self, normal_linear_)


# What both MobileNet builders accept; the defaults are the classes'.
MOBILENET_ARGS = ("num_classes", "in_channels", "width_mult", "stem", "dropout")


@register_model()
@variant(MobileNetV1, MOBILENET_ARGS)
def mobilenet_v1(**kwargs: Any) -> MobileNetV1:
    """MobileNetV1 with width multiplier ``width_mult``."""
    return MobileNetV1(**kwargs)


@register_model()
@variant(MobileNetV2, MOBILENET_ARGS)
def mobilenet_v2(**kwargs: Any) -> MobileNetV2:
    """MobileNetV2 with width multiplier ``width_mult``."""
    return MobileNetV2(**kwargs)
