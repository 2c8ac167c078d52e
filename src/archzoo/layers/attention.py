"""Multi-head self-attention over the positions of a feature map."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.norm import group_norm


class SelfAttention2d(nn.Module):
    r"""Multi-head self-attention over the :math:`H W` positions of a feature map, with a
    residual connection, as in the U-Net of DDPM (Ho et al. 2020, https://arxiv.org/abs/2006.11239).

    .. math::
        Q, K, V = W_{qkv} * \mathrm{GN}(x), \qquad
        \mathrm{out} = x + W_o\,\mathrm{softmax}\big(Q K^\top / \sqrt{d}\big)\,V,

    with :math:`W_{qkv}` and :math:`W_o` 1x1 convolutions and :math:`d` = ``channels / heads``.
    :math:`W_o` starts at zero, so the block starts as the identity.

    Args:
        channels: channels :math:`C`, divisible by ``heads``.
        heads: attention heads (default 4).
        groups: GroupNorm groups (default 8).

    Shapes:
        input and output :math:`(B, C, H, W)`.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8) -> None:
        super().__init__()
        if channels % heads:
            raise UserError(f"attention channels {channels} must divide by heads {heads}.")
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)  # (B, 3, nh, hd, HW)
        q, k, v = qkv.permute(1, 0, 2, 4, 3).unbind(0)  # each (B, nh, HW, hd)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, nh, HW, hd)
        out = out.transpose(2, 3).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(out)
