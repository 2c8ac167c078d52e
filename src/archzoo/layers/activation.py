"""Activation functions resolved by name, so configs can say ``act: gelu``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from archzoo.errors import UserError

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),  # GPT-2's "gelu_new"
    "silu": lambda: nn.SiLU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "mish": lambda: nn.Mish(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "none": nn.Identity,
}


def get_activation(name: str | nn.Module | None) -> nn.Module:
    """Return a fresh activation module for ``name`` (case-insensitive).

    Args:
        name: one of relu, relu6, leaky_relu, elu, gelu, gelu_tanh (the tanh
            approximation, GPT-2's), silu/swish, hardswish,
            mish, tanh, sigmoid, identity/none; an ``nn.Module`` is returned as is.
    """
    if isinstance(name, nn.Module):
        return name
    key = (name or "identity").lower()
    if key not in _ACTIVATIONS:
        raise UserError(f"Unknown activation '{name}'; choose one of {', '.join(sorted(_ACTIVATIONS))}.")
    return _ACTIVATIONS[key]()
