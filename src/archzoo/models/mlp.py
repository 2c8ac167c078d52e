"""Multi-layer perceptron: the first architecture of every course.

A stack of ``Linear → [BatchNorm] → activation → [Dropout]`` layers followed by
a linear head: :math:`h_{l+1} = \\mathrm{drop}(\\sigma(\\mathrm{BN}(W_l h_l + b_l)))`.
Images are flattened first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from archzoo.layers.activation import get_activation
from archzoo.models._example import param_device
from archzoo.registry import register_model


class MLP(nn.Module):
    """A fully connected network.

    Args:
        in_features: input size after flattening.
        out_features: output size (classes or regression targets).
        hidden: widths of the hidden layers (default ``(256, 128)``).
        act: activation name (default ``"relu"``).
        batch_norm: batch norm after each hidden linear layer (default False).
        dropout: dropout probability after each hidden layer (default 0).

    Shapes:
        input :math:`(B, *)` with :math:`\\prod * =` ``in_features``; output :math:`(B, \\text{out})`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (256, 128),
        act: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(get_activation(act))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def example_input(self, batch_size: int = 2) -> tuple[Tensor]:
        """``(x,)``: a standard normal batch of shape ``(B, in_features)``."""
        return (torch.randn(batch_size, self.in_features, device=param_device(self)),)


def _flat(in_features: int | None, in_channels: int, image_size: int | None) -> int:
    if in_features is not None:
        return in_features
    return in_channels * (image_size or 1) ** 2


@register_model("mlp")
def mlp(
    in_features: int | None = None,
    num_classes: int | None = None,
    out_features: int | None = None,
    in_channels: int = 1,
    image_size: int | None = None,
    hidden: Sequence[int] = (256, 128),
    act: str = "relu",
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> MLP:
    """An MLP whose input size comes from the data (``in_features`` or channels × size²)."""
    out = out_features if out_features is not None else (num_classes if num_classes is not None else 1)
    return MLP(_flat(in_features, in_channels, image_size), out, hidden, act, batch_norm, dropout)


@register_model("mlp_large")
def mlp_large(
    in_features: int | None = None,
    num_classes: int | None = None,
    in_channels: int = 1,
    image_size: int | None = None,
    dropout: float = 0.2,
) -> MLP:
    """Two wide hidden layers with batch norm and dropout (a strong Fashion-MNIST MLP)."""
    return MLP(_flat(in_features, in_channels, image_size), num_classes or 10, (1024, 512), "relu", True, dropout)
