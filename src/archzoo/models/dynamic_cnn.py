"""A small CNN built from dynamic convolutions, for 28-32 px images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from archzoo.errors import UserError
from archzoo.layers.conv import ConvBNAct
from archzoo.layers.dynamic_conv import DynamicConv2d, DynamicConvBNAct
from archzoo.models._classifier import ImageClassifier
from archzoo.models._variant import variant
from archzoo.registry import register_model


class DynamicCNN(ImageClassifier):
    r"""A small CNN whose stages use dynamic convolution (Chen et al., `"Dynamic
    Convolution: Attention over Convolution Kernels" <https://arxiv.org/abs/1912.03458>`_,
    CVPR 2020): every 3x3 convolution after the stem mixes :math:`K` kernels with
    attention weights computed from its input,
    :math:`y = (\sum_k \pi_k(x) W_k) * x`.

    A static 3x3 stem, then one stage per width of two
    :class:`~archzoo.layers.dynamic_conv.DynamicConvBNAct` blocks (the first strided,
    except in the first stage), global average pooling, dropout and a linear layer.
    The paper anneals the attention temperature from 30 to 1 over the first epochs;
    call :meth:`set_temperature` from a callback to do so.

    Args:
        num_classes: classes of the head (default 10).
        in_channels: channels of the input image (default 3).
        widths: channels of each stage (default ``(32, 64, 128)``).
        num_kernels: kernels :math:`K` per dynamic convolution (default 4).
        temperature: initial attention temperature (default 30).
        dropout: dropout before the linear layer (default 0.2).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.

    The head is the attribute ``classifier`` (dropout, linear); ``stem`` and ``stages``
    are module attributes.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128),
        num_kernels: int = 4,
        temperature: float = 30.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not widths:
            raise UserError("DynamicCNN needs at least one stage width.")
        self.in_channels = in_channels
        self.stem = ConvBNAct(in_channels, widths[0], 3)
        stages, channels = [], widths[0]
        for i, w in enumerate(widths):
            stages.append(
                nn.Sequential(
                    DynamicConvBNAct(
                        channels, w, 3, 1 if i == 0 else 2, num_kernels=num_kernels, temperature=temperature
                    ),
                    DynamicConvBNAct(w, w, 3, num_kernels=num_kernels, temperature=temperature),
                )
            )
            channels = w
        self.stages = nn.ModuleList(stages)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def set_temperature(self, temperature: float) -> None:
        """Set the attention temperature of every dynamic convolution."""
        for m in self.modules():
            if isinstance(m, DynamicConv2d):
                m.set_temperature(temperature)


@register_model()
@variant(DynamicCNN, ("num_classes", "in_channels", "num_kernels", "temperature", "dropout"))
def dynamic_cnn(**kwargs: Any) -> DynamicCNN:
    """Three stages (32, 64, 128 channels) of dynamic convolutions with K=4 kernels."""
    return DynamicCNN(widths=(32, 64, 128), **kwargs)
