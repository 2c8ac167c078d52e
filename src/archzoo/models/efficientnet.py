"""EfficientNet: MBConv blocks with squeeze-and-excitation, scaled in width and depth.

Module names follow torchvision's ``EfficientNet`` (``features``, ``avgpool``,
``classifier``; blocks named ``block`` and ``stochastic_depth``), so its B0-B3 state
dicts load with ``strict=True``.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.conv import ConvBNAct
from archzoo.layers.init import init_cnn_, uniform_linear_
from archzoo.layers.se import SqueezeExcitation
from archzoo.models._variant import variant
from archzoo.models.mobilenet import STEMS, StagedFeaturesNet, make_divisible
from archzoo.registry import register_model


class StochasticDepth(nn.Module):
    r"""Stochastic depth from Huang et al., `"Deep Networks with Stochastic Depth"
    <https://arxiv.org/abs/1603.09382>`_ (ECCV 2016), per sample ("row" mode): during
    training each sample's residual branch is kept with probability :math:`1 - p` and
    rescaled so its expectation is unchanged,

    .. math::
        y = \frac{m}{1 - p}\, x, \qquad m \sim \mathrm{Bernoulli}(1 - p)

    and in evaluation it is the identity.

    Args:
        p: probability of dropping a sample's branch.

    Shapes:
        input :math:`(B, *)`, output :math:`(B, *)`.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise UserError(f"Stochastic depth probability must be in [0, 1], got {p}.")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (B, 1, 1, 1)
        return x * mask / keep if keep > 0 else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    r"""The mobile inverted bottleneck with squeeze-and-excitation used by EfficientNet:
    1x1 expansion (skipped when the ratio is 1), depthwise :math:`k \times k`
    convolution, SE, linear 1x1 projection, with SiLU activations and a residual
    connection (with stochastic depth) when the shape is unchanged.

    .. math::
        h = \mathrm{SE}(\mathrm{SiLU}(\mathrm{BN}(W_{dw} \circledast
            \mathrm{SiLU}(\mathrm{BN}(W_{exp} * x))))), \qquad
        y = x\,[s = 1,\ C_{in} = C_{out}] + \mathrm{SD}_p(\mathrm{BN}(W_{proj} * h))

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel of the depthwise convolution, 3 or 5.
        stride: stride of the depthwise convolution, 1 or 2.
        expand_ratio: expansion factor of the hidden width.
        stochastic_depth_prob: probability of dropping the residual branch (default 0).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, C_{out}, H / s, W / s)`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: float,
        stochastic_depth_prob: float = 0.0,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise UserError(f"MBConv stride must be 1 or 2, got {stride}.")
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = make_divisible(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(ConvBNAct(in_channels, hidden, 1, act="silu"))
        layers += [
            ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, act="silu"),
            SqueezeExcitation(hidden, squeeze_channels=max(1, in_channels // 4), act="silu"),
            ConvBNAct(hidden, out_channels, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class EfficientNet(StagedFeaturesNet):
    r"""EfficientNet from Tan and Le, `"EfficientNet: Rethinking Model Scaling for
    Convolutional Neural Networks" <https://arxiv.org/abs/1905.11946>`_ (ICML 2019).

    The B0 baseline is a 3x3 stride-2 stem, seven groups of :class:`MBConv` blocks
    (expansion, kernel, stride, channels, repeats), a 1x1 convolution to four times the
    last width, global average pooling, dropout and a linear layer. Compound scaling
    grows depth by :math:`\alpha^\phi`, width by :math:`\beta^\phi` and resolution by
    :math:`\gamma^\phi`; here ``width_mult`` multiplies every width (rounded to a
    multiple of 8) and ``depth_mult`` every group's repeats (rounded up). Block
    :math:`i` of :math:`N` drops its branch with probability
    ``stochastic_depth_prob * i / N``.

    Args:
        width_mult: width coefficient (default 1.0).
        depth_mult: depth coefficient (default 1.0).
        dropout: dropout before the linear layer (default 0.2).
        stochastic_depth_prob: stochastic depth of the deepest block; 0 disables it
            (default 0.2).
        num_classes: classes of the head (default 1000).
        in_channels: channels of the input image (default 3).
        stem: ``"imagenet"``: overall stride 32; ``"small"``: the stem and the
            24-channel group use stride 1 (overall stride 8), for 28-32 px images
            (default ``"imagenet"``).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``classifier`` (dropout, linear); ``features[0]`` is the
    stem and ``stages`` lists the seven MBConv groups, the last one with the final 1x1
    convolution.
    """

    # (expansion, kernel, stride, input channels, output channels, repeats) of B0
    SETTINGS = (
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    )

    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
        stochastic_depth_prob: float = 0.2,
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise UserError(f"Unknown EfficientNet stem '{stem}'; choose one of {', '.join(STEMS)}.")
        if width_mult <= 0 or depth_mult <= 0:
            raise UserError(f"EfficientNet coefficients must be positive, got width {width_mult}, depth {depth_mult}.")
        self.in_channels = in_channels
        small = stem == "small"

        def width(c: int) -> int:
            return make_divisible(c * width_mult)

        repeats = [int(math.ceil(n * depth_mult)) for *_, n in self.SETTINGS]
        total, block_id = sum(repeats), 0
        layers: list[nn.Module] = [ConvBNAct(in_channels, width(self.SETTINGS[0][3]), 3, 1 if small else 2, act="silu")]
        for g, ((t, k, s, c_in, c_out, _), n) in enumerate(zip(self.SETTINGS, repeats, strict=True)):
            group = []
            for i in range(n):
                stride = 1 if i > 0 or (small and g == 1) else s
                sd = stochastic_depth_prob * block_id / total
                group.append(MBConv(width(c_in) if i == 0 else width(c_out), width(c_out), k, stride, t, sd))
                block_id += 1
            layers.append(nn.Sequential(*group))
        last_in = width(self.SETTINGS[-1][4])
        self.num_features = 4 * last_in
        layers.append(ConvBNAct(last_in, self.num_features, 1, act="silu"))
        self.features = nn.Sequential(*layers)
        n_groups = len(self.SETTINGS)
        self._bounds = [(i, i + 1) for i in range(1, n_groups)] + [(n_groups, n_groups + 2)]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(self.num_features, num_classes))

        init_cnn_(self, uniform_linear_)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the linear layer of ``classifier`` (keeping its dropout) for ``num_classes`` classes."""
        super().reset_classifier(num_classes)
        uniform_linear_(self.classifier[-1])


# What every EfficientNet variant accepts; the defaults are EfficientNet's.
EFFICIENTNET_ARGS = ("num_classes", "in_channels", "stem", "dropout", "stochastic_depth_prob")


@register_model()
@variant(EfficientNet, EFFICIENTNET_ARGS)
def efficientnet_b0(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B0 (width 1.0, depth 1.0; the paper trains it at 224 px)."""
    return EfficientNet(width_mult=1.0, depth_mult=1.0, **kwargs)


@register_model()
@variant(EfficientNet, EFFICIENTNET_ARGS)
def efficientnet_b1(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B1 (width 1.0, depth 1.1; 240 px in the paper)."""
    return EfficientNet(width_mult=1.0, depth_mult=1.1, **kwargs)


@register_model()
@variant(EfficientNet, EFFICIENTNET_ARGS, dropout=0.3)
def efficientnet_b2(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B2 (width 1.1, depth 1.2, dropout 0.3; 260 px in the paper)."""
    return EfficientNet(width_mult=1.1, depth_mult=1.2, **kwargs)


@register_model()
@variant(EfficientNet, EFFICIENTNET_ARGS, dropout=0.3)
def efficientnet_b3(**kwargs: Any) -> EfficientNet:
    """EfficientNet-B3 (width 1.2, depth 1.4, dropout 0.3; 300 px in the paper)."""
    return EfficientNet(width_mult=1.2, depth_mult=1.4, **kwargs)
