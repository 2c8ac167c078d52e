r"""RealNVP normalizing flows with exact log-likelihood: a 2-D flow and a multi-scale image flow.

Dinh, Sohl-Dickstein & Bengio, *Density estimation using Real NVP* (2017),
https://arxiv.org/abs/1605.08803. An invertible map :math:`z = f(x)` with a
standard normal base gives the exact density (change of variables)

.. math::
    \log p(x) = \log \mathcal N(f(x); 0, I) + \log\left|\det \frac{\partial f}{\partial x}\right|.

An affine coupling layer with a binary mask :math:`m` keeps :math:`m \odot x`
and transforms the rest with a scale and shift computed from the kept part:

.. math::
    y = m \odot x + (1 - m) \odot \big(x \odot e^{s(m \odot x)} + t(m \odot x)\big), \qquad
    \log|\det J| = \textstyle\sum_i (1 - m_i)\, s_i(m \odot x),

so the Jacobian is triangular and the inverse is
:math:`x = m \odot y + (1 - m) \odot (y - t) \odot e^{-s}`. Masks alternate:
left/right coordinates for 2-D data, checkerboards and channel halves for images,
where a squeeze turns each 2x2 patch into 4 channels and half of the channels
leave the flow at each scale (the multi-scale architecture).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.mlp import mlp
from archzoo.models._example import ImageInput, param_device
from archzoo.models._variant import variant
from archzoo.registry import register_model
from archzoo.utils import image_hw, randn

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """:math:`\\log\\mathcal N(z; 0, I) = -\\tfrac12 \\sum_i (z_i^2 + \\log 2\\pi)`, summed over all but dim 0."""
    return -0.5 * (z.pow(2) + LOG_2PI).flatten(1).sum(1)


class AffineCoupling(nn.Module):
    r"""Affine coupling with a fixed binary mask; :math:`s = a \cdot \tanh(\tilde s)` with a learned scale :math:`a`.

    ``net`` maps the masked input (same shape as ``x``) to ``2 * C`` channels (images) or
    ``2 * D`` features (vectors): the raw scale :math:`\tilde s` and the shift :math:`t`.
    Its last layer is zero-initialised, so the layer starts as the identity.

    Args:
        mask: ``(1, C, H, W)`` or ``(1, D)`` tensor of 0/1, 1 where the input is kept.
        net: the conditioner network.

    Shapes:
        ``x`` :math:`(B, C, H, W)` or :math:`(B, D)`; ``forward`` returns ``(y, log_det)`` with ``log_det`` :math:`(B,)`.
    """

    def __init__(self, mask: Tensor, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.scale = nn.Parameter(torch.ones(1, mask.shape[1], *([1] * (mask.dim() - 2))))

    def _s_t(self, x_kept: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(x_kept).chunk(2, dim=1)  # each like x
        free = 1 - self.mask
        s = self.scale * torch.tanh(s) * free  # only the transformed coordinates get a scale
        return s, t * free

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._s_t(x * self.mask)
        y = x * self.mask + (1 - self.mask) * (x * torch.exp(s) + t)  # y = m x + (1-m)(x e^s + t)
        return y, s.flatten(1).sum(1)  # log|det J| = sum (1-m) s

    def inverse(self, y: Tensor) -> Tensor:
        s, t = self._s_t(y * self.mask)  # m y = m x, so s and t are the forward ones
        return y * self.mask + (1 - self.mask) * (y - t) * torch.exp(-s)


# ---------------------------------------------------------------------------
# 2-D flow
# ---------------------------------------------------------------------------


class RealNVP2D(nn.Module):
    r"""RealNVP for low-dimensional vectors (two moons): couplings with alternating halves.

    Args:
        in_features: dimension :math:`D` (default 2).
        num_layers: coupling layers; the mask flips each layer (default 8).
        hidden: width of the conditioner MLPs (default 128).
        depth: hidden layers per conditioner (default 2).

    Shapes:
        ``x`` :math:`(B, D)`; ``log_prob`` :math:`(B,)`; ``sample(n)`` :math:`(n, D)`.
    """

    is_conditional = False
    num_classes = 0
    data_range = None

    def __init__(self, in_features: int = 2, num_layers: int = 8, hidden: int = 128, depth: int = 2) -> None:
        super().__init__()
        if in_features < 2:
            raise UserError("RealNVP2D needs at least 2 features.")
        self.in_features = in_features
        first = (torch.arange(in_features) < in_features // 2).float()[None]  # (1, D): 1 on the first half
        layers = []
        for i in range(num_layers):
            mask = first if i % 2 == 0 else 1 - first
            net = mlp([in_features, *([hidden] * depth), 2 * in_features], act="relu")
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)
            layers.append(AffineCoupling(mask, net))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``z = f(x)`` and :math:`\\log|\\det \\partial f / \\partial x|`, ``(B, D)`` and ``(B,)``."""
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact :math:`\\log p(x)` in nats, ``(B,)``."""
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        z = temperature * randn((n, self.in_features), generator, next(self.parameters()).device)
        return self.inverse(z)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor]:
        """``(x,)``: standard normal points :math:`(B, D)`."""
        return (torch.randn(batch_size, self.in_features, device=param_device(self)),)


# ---------------------------------------------------------------------------
# image flow
# ---------------------------------------------------------------------------


def squeeze(x: Tensor) -> Tensor:
    """Space to depth: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2)  # (B, C, H/2, 2, W/2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """Depth to space, the inverse of :func:`squeeze`: ``(B, 4C, H, W) -> (B, C, 2H, 2W)``."""
    b, c4, h, w = x.shape
    c = c4 // 4
    x = x.reshape(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, H, 2, W, 2)
    return x.reshape(b, c, 2 * h, 2 * w)


def checkerboard(channels: int, h: int, w: int, parity: int) -> Tensor:
    """``(1, C, H, W)`` mask, 1 where ``(i + j) % 2 == parity``."""
    ij = torch.arange(h)[:, None] + torch.arange(w)[None, :]
    return ((ij % 2) == parity).float().expand(channels, h, w)[None].clone()


def channel_mask(channels: int, parity: int) -> Tensor:
    """``(1, C, 1, 1)`` mask keeping the first (parity 0) or second half of the channels."""
    first = (torch.arange(channels) < channels // 2).float()
    return (first if parity == 0 else 1 - first).reshape(1, channels, 1, 1)


class ConvConditioner(nn.Module):
    """Conditioner ``C -> 2C`` channels: a 3x3 conv, residual blocks, and a zero-initialised 3x3 conv."""

    def __init__(self, channels: int, hidden: int, num_blocks: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(channels, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1))
            for _ in range(num_blocks)
        )
        self.out = nn.Conv2d(hidden, 2 * channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(F.relu(h))


class RealNVPImage(ImageInput, nn.Module):
    r"""Multi-scale RealNVP for images in [0, 1].

    Inputs are first mapped to logit space, :math:`u = \operatorname{logit}(\alpha + (1 - 2\alpha) x)`
    with :math:`\alpha = 0.05`, whose log-Jacobian
    :math:`\sum_i \log(1 - 2\alpha) - \log p_i - \log(1 - p_i)`, :math:`p_i = \alpha + (1 - 2\alpha)x_i`,
    is part of :math:`\log p(x)`. Each of the first ``num_scales - 1`` scales applies 3
    checkerboard couplings, a squeeze, 3 channel couplings and factors out half of the
    channels; the last scale applies 4 checkerboard couplings. For 1x28x28 and two
    scales: 1x28x28 -> 4x14x14, 2x14x14 factored out, 2x14x14 to the last scale.

    Args:
        in_channels: image channels (default 1).
        image_size: image side or ``(H, W)``, divisible by :math:`2^{\text{num\_scales}-1}` (default 28).
        num_scales: scales (default 2).
        hidden: conditioner width (default 64).
        num_blocks: residual blocks per conditioner (default 4).
        alpha: logit-transform margin (default 0.05).

    Shapes:
        ``x`` :math:`(B, C, H, W)` in [0, 1]; ``log_prob`` :math:`(B,)` nats (density on :math:`[0, 1]^D`);
        ``forward`` returns ``z`` :math:`(B, CHW)` and ``log_det`` :math:`(B,)`.
    """

    is_conditional = False
    num_classes = 0

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        num_scales: int = 2,
        hidden: int = 64,
        num_blocks: int = 4,
        alpha: float = 0.05,
    ) -> None:
        super().__init__()
        h, w = image_hw(image_size)
        f = 2 ** (num_scales - 1)
        if num_scales < 1 or h % f or w % f:
            raise UserError(f"RealNVPImage with {num_scales} scales needs an image size divisible by {f}; got {h}x{w}.")
        self.x_shape = (in_channels, h, w)
        self.alpha = alpha
        self.data_range = (0.0, 1.0)
        self.scales = nn.ModuleList()
        c = in_channels
        for s in range(num_scales):
            last = s == num_scales - 1
            n_checker = 4 if last else 3
            checker = nn.ModuleList(
                AffineCoupling(checkerboard(c, h, w, i % 2), ConvConditioner(c, hidden, num_blocks))
                for i in range(n_checker)
            )
            chan = nn.ModuleList()
            if not last:
                h, w = h // 2, w // 2
                chan = nn.ModuleList(
                    AffineCoupling(channel_mask(4 * c, i % 2), ConvConditioner(4 * c, hidden, num_blocks))
                    for i in range(3)
                )
                c = 2 * c  # 4c after the squeeze, half of which is factored out
            self.scales.append(nn.ModuleDict({"checker": checker, "channel": chan}))

    # --- logit preprocessing -----------------------------------------------------
    def _to_logit(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        u = torch.log(p) - torch.log1p(-p)  # logit(p)
        log_det = (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)  # log du/dx
        return u, log_det

    def _from_logit(self, u: Tensor) -> Tensor:
        return (torch.sigmoid(u) - self.alpha) / (1 - 2 * self.alpha)

    # --- flow --------------------------------------------------------------------
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``z = f(x)`` flattened to ``(B, D)`` and :math:`\\log|\\det \\partial f / \\partial x|` ``(B,)``."""
        h, log_det = self._to_logit(x)
        zs = []
        for scale in self.scales:
            for layer in scale["checker"]:
                h, ld = layer(h)
                log_det = log_det + ld
            if len(scale["channel"]):
                h = squeeze(h)  # (B, 4C, H/2, W/2), volume preserving
                for layer in scale["channel"]:
                    h, ld = layer(h)
                    log_det = log_det + ld
                z_out, h = h.chunk(2, dim=1)  # factor out half the channels
                zs.append(z_out.flatten(1))
        zs.append(h.flatten(1))
        return torch.cat(zs, dim=1), log_det  # (B, C*H*W)

    def inverse(self, z: Tensor) -> Tensor:
        """Map flattened latents ``(B, D)`` back to images in [0, 1]."""
        b = z.shape[0]
        shapes = self._latent_shapes()
        parts = list(torch.split(z, [math.prod(s) for s in shapes], dim=1))
        h = parts.pop().reshape(b, *shapes[-1])
        for scale in reversed(self.scales):
            if len(scale["channel"]):
                z_out = parts.pop().reshape(b, *h.shape[1:])
                h = torch.cat([z_out, h], dim=1)  # (B, 4C, H, W)
                for layer in reversed(scale["channel"]):
                    h = layer.inverse(h)
                h = unsqueeze(h)
            for layer in reversed(scale["checker"]):
                h = layer.inverse(h)
        return self._from_logit(h)

    def _latent_shapes(self) -> list[tuple[int, int, int]]:
        c, h, w = self.x_shape
        shapes = []
        for scale in self.scales:
            if len(scale["channel"]):
                c, h, w = 4 * c, h // 2, w // 2
                shapes.append((c // 2, h, w))
                c = c // 2
        shapes.append((c, h, w))
        return shapes

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact :math:`\\log p(x)` in nats for ``x`` in (0, 1), ``(B,)``."""
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det

    def training_forward(self, x: Tensor) -> Tensor:
        """:math:`\\log p(\\sigma(x))` for unconstrained ``x`` squashed into (0, 1) (a generic forward for smoke tests)."""
        return self.log_prob(torch.sigmoid(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` images in [0, 1]; ``temperature`` < 1 scales the base noise down (sharper, less varied)."""
        d = math.prod(self.x_shape)
        z = temperature * randn((n, d), generator, next(self.parameters()).device)
        return self.inverse(z).clamp(0.0, 1.0)


@register_model("realnvp_2d")
@variant(RealNVP2D, ("in_features", "num_layers", "hidden"))
def realnvp_2d(**kwargs: Any) -> RealNVP2D:
    """RealNVP with 8 alternating couplings and 2x128 MLP conditioners, for 2-D point clouds."""
    return RealNVP2D(**kwargs)


@register_model("realnvp_image")
@variant(RealNVPImage, ("in_channels", "image_size", "num_scales", "hidden", "num_blocks"))
def realnvp_image(**kwargs: Any) -> RealNVPImage:
    """Multi-scale RealNVP (checkerboard, squeeze, channel couplings) for 28x28 or 32x32 images."""
    return RealNVPImage(**kwargs)
