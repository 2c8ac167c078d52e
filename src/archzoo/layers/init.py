"""Weight initialisation by name (kaiming, xavier, orthogonal, normal), and torchvision's CNN initialisation."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from archzoo.errors import UserError

INIT_SCHEMES = ("default", "kaiming", "kaiming_uniform", "xavier", "xavier_uniform", "orthogonal", "normal")


def init_weights(model: nn.Module, scheme: str = "default", nonlinearity: str = "relu") -> nn.Module:
    """Re-initialise the weights of linear and convolution layers of ``model`` in place.

    Biases are set to zero and norm layers to weight 1, bias 0. ``default`` leaves
    PyTorch's own initialisation alone.

    Args:
        model: the module to initialise.
        scheme: kaiming (He normal, fan_out for convs, fan_in for linears),
            kaiming_uniform, xavier (Glorot normal), xavier_uniform, orthogonal,
            normal (std 0.02, as in DCGAN) or default.
        nonlinearity: the gain's nonlinearity for kaiming (default ``"relu"``).
    """
    if scheme not in INIT_SCHEMES:
        raise UserError(f"Unknown init scheme '{scheme}'; choose one of {', '.join(INIT_SCHEMES)}.")
    if scheme == "default":
        return model
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            w = m.weight
            if scheme == "kaiming":
                mode = "fan_in" if isinstance(m, nn.Linear) else "fan_out"
                nn.init.kaiming_normal_(w, mode=mode, nonlinearity=nonlinearity)
            elif scheme == "kaiming_uniform":
                nn.init.kaiming_uniform_(w, nonlinearity=nonlinearity)
            elif scheme == "xavier":
                nn.init.xavier_normal_(w)
            elif scheme == "xavier_uniform":
                nn.init.xavier_uniform_(w)
            elif scheme == "orthogonal":
                nn.init.orthogonal_(w)
            elif scheme == "normal":
                nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def normal_linear_(m: nn.Linear, std: float = 0.01) -> None:
    """A linear layer from :math:`\\mathcal N(0, \\text{std}^2)` with zero bias (torchvision's VGG and MobileNets)."""
    nn.init.normal_(m.weight, 0.0, std)
    nn.init.zeros_(m.bias)


def uniform_linear_(m: nn.Linear) -> None:
    """A linear layer from :math:`U(-1/\\sqrt{n_{out}}, 1/\\sqrt{n_{out}})` with zero bias (EfficientNet)."""
    bound = 1.0 / math.sqrt(m.out_features)
    nn.init.uniform_(m.weight, -bound, bound)
    nn.init.zeros_(m.bias)


def init_cnn_(model: nn.Module, linear: Callable[[nn.Linear], None] | None = normal_linear_) -> nn.Module:
    r"""Initialise ``model`` in place as torchvision initialises its CNNs (VGG, ResNet, MobileNet,
    EfficientNet): He-normal convolutions for the fan-out, :math:`W \sim \mathcal N(0, 2 / (k^2 C_{out}))`,
    with zero biases; batch norms at :math:`\gamma = 1, \beta = 0`; linear layers by ``linear``
    (default :func:`normal_linear_`; None leaves PyTorch's initialisation). Modules are visited in
    ``model.modules()`` order, so a seed gives the same weights as torchvision's own loop.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear is not None:
            linear(m)
    return model
