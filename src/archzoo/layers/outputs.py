"""Structured model outputs that a task knows how to read."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class AuxLogits(NamedTuple):
    """What a classifier with auxiliary heads returns in training mode (GoogLeNet's ``aux1``, ``aux2``).

    ``logits`` are the main head's :math:`(B, C)`; ``aux`` holds one :math:`(B, C)` tensor per auxiliary
    head. The classification task adds each auxiliary loss with its ``aux_weight`` (0.3 in Szegedy et
    al. 2015); in evaluation mode such a model returns the main logits alone.
    """

    logits: Tensor
    aux: tuple[Tensor, ...]
