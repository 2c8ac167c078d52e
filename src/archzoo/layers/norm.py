"""Normalisation layers built by name, so a model argument can say ``norm: layer``."""

from __future__ import annotations

import math

from torch import nn

from archzoo.errors import UserError

NORMS_2D = ("batch", "group", "layer", "instance", "none")


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    r"""GroupNorm with the largest group count <= ``groups`` that divides ``channels``.

    Args:
        channels: channels :math:`C` of the input.
        groups: the wanted number of groups; :math:`\gcd(\text{groups}, C)` are used.
    """
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def norm_2d(kind: str, channels: int, groups: int = 8) -> nn.Module:
    r"""A normalisation of :math:`(B, C, H, W)` feature maps, by name.

    With per-group statistics :math:`\mu, \sigma^2`, every kind computes
    :math:`y = \gamma\,(x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta`; they differ in what
    the statistics are taken over:

    * ``"batch"``: each channel over the batch and positions (:class:`~torch.nn.BatchNorm2d`);
    * ``"group"``: each sample's channels in ``groups`` groups (:func:`group_norm`);
    * ``"layer"``: each sample over all of :math:`C, H, W` (one group);
    * ``"instance"``: each sample and channel over :math:`H, W` (one group per channel);
    * ``"none"``: the identity.

    Only ``"batch"`` mixes samples, so the others suit a critic whose gradient penalty is per sample.

    Args:
        kind: one of ``NORMS_2D``.
        channels: channels :math:`C`.
        groups: groups of ``"group"`` (default 8).
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return group_norm(channels, groups)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "none":
        return nn.Identity()
    raise UserError(f"Unknown norm '{kind}'; choose {', '.join(NORMS_2D[:-1])} or none.")
