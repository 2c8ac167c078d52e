"""A stack of linear layers with activations between them."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from archzoo.layers.activation import get_activation


def mlp(dims: Sequence[int], act: str = "relu", last_act: bool = False) -> nn.Sequential:
    """Linear layers ``dims[0] -> dims[1] -> ... -> dims[-1]`` with ``act`` between them."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2 or last_act:
            layers.append(get_activation(act))
    return nn.Sequential(*layers)
