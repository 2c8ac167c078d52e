"""Shared building blocks, one concept per file."""

from archzoo.layers.activation import get_activation
from archzoo.layers.attention import SelfAttention2d
from archzoo.layers.conv import ConvBNAct
from archzoo.layers.embedding import timestep_embedding
from archzoo.layers.init import init_weights
from archzoo.layers.norm import group_norm, norm_2d
from archzoo.layers.recurrent import Recurrent

__all__ = [
    "ConvBNAct",
    "Recurrent",
    "SelfAttention2d",
    "get_activation",
    "group_norm",
    "init_weights",
    "norm_2d",
    "timestep_embedding",
]
