"""Shared building blocks, one concept per file."""

from archzoo.layers.activation import get_activation
from archzoo.layers.conv import ConvBNAct
from archzoo.layers.init import init_weights

__all__ = ["ConvBNAct", "get_activation", "init_weights"]
