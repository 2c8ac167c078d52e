"""Sinusoidal embeddings of scalar positions or timesteps."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    r"""Sinusoidal embedding of (possibly fractional) timesteps, the Transformer's position
    encoding (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762) as DDPM uses it.

    .. math::
        \omega_i = \text{max\_period}^{-i/h}, \quad i < h = \lfloor \text{dim} / 2 \rfloor, \qquad
        \mathrm{emb}(t) = [\cos(t\,\omega), \sin(t\,\omega)],

    zero-padded to ``dim`` when ``dim`` is odd.

    Args:
        t: timesteps, int or float.
        dim: embedding size.
        max_period: the longest period (default 10000).

    Shapes:
        ``t`` :math:`(B,)`, output :math:`(B, \text{dim})`.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)  # (h,)
    args = t.float()[:, None] * freqs[None, :]  # (B, h)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2h)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb
