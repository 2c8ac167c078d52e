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
    The paper anneals the attention temperature linearly from 30 to 1 over the first 10
    epochs (of 100+); here it falls from ``temperature`` to ``final_temperature`` over the first
    ``anneal_epochs`` through the engine's schedule hook :meth:`on_train_progress`, which the
    Trainer calls before every training batch with the fractional epoch. The temperature
    is a buffer, so checkpoints and loaded runs keep the value reached.

    Args:
        num_classes: classes of the head (default 10).
        in_channels: channels of the input image (default 3).
        widths: channels of each stage (default ``(32, 64, 128)``).
        num_kernels: kernels :math:`K` per dynamic convolution (default 4).
        temperature: initial attention temperature (default 30).
        final_temperature: the temperature after annealing (default 1).
        anneal_epochs: epochs over which the temperature falls linearly; 0 keeps it
            constant (default 10, as in the paper).
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
        final_temperature: float = 1.0,
        anneal_epochs: float = 10.0,
    ) -> None:
        super().__init__()
        if not widths:
            raise UserError("DynamicCNN needs at least one stage width.")
        if temperature <= 0 or final_temperature <= 0:
            raise UserError(
                f"DynamicCNN temperatures must be positive, got {temperature} and final_temperature {final_temperature}."
            )
        if anneal_epochs < 0:
            raise UserError(f"DynamicCNN anneal_epochs must be 0 or more, got {anneal_epochs}.")
        self.initial_temperature = float(temperature)
        self.final_temperature = float(final_temperature)
        self.anneal_epochs = float(anneal_epochs)
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

    def temperature_at(self, epoch: float) -> float:
        r""":math:`\tau(e) = \tau_1 + (\tau_0 - \tau_1)\max(0, 1 - e / E)` at fractional epoch :math:`e`."""
        if self.anneal_epochs == 0:
            return self.initial_temperature
        left = max(0.0, 1.0 - epoch / self.anneal_epochs)
        return self.final_temperature + (self.initial_temperature - self.final_temperature) * left

    def on_train_progress(self, epoch: float) -> None:
        """The engine's schedule hook: set the temperature for fractional epoch ``epoch``."""
        self.set_temperature(self.temperature_at(epoch))

    def set_temperature(self, temperature: float) -> None:
        """Set the attention temperature of every dynamic convolution."""
        for m in self.modules():
            if isinstance(m, DynamicConv2d):
                m.set_temperature(temperature)


@register_model()
@variant(
    DynamicCNN,
    ("num_classes", "in_channels", "num_kernels", "temperature", "final_temperature", "anneal_epochs", "dropout"),
)
def dynamic_cnn(**kwargs: Any) -> DynamicCNN:
    """Three stages (32, 64, 128 channels) of dynamic convolutions with K=4 kernels."""
    return DynamicCNN(widths=(32, 64, 128), **kwargs)
