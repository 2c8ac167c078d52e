r"""The U-Net noise predictor of DDPM: residual blocks, a time embedding, attention at low resolution.

Ho, Jain & Abbeel, *Denoising Diffusion Probabilistic Models* (2020),
https://arxiv.org/abs/2006.11239, appendix B; U-Net from Ronneberger, Fischer &
Brox (2015), https://arxiv.org/abs/1505.04597. The network
:math:`\epsilon_\theta(x_t, t, y)` maps a noisy image, its timestep and an
optional class label to an image of the same shape.

* Timestep embedding: the Transformer's sinusoids
  :math:`\mathrm{emb}(t)_{i} = \cos(t\,\omega_i)`, :math:`\mathrm{emb}(t)_{h+i} = \sin(t\,\omega_i)`,
  :math:`\omega_i = 10000^{-i/h}`, followed by an MLP.
* Residual blocks: :math:`h = \mathrm{conv}(\mathrm{SiLU}(\mathrm{GN}(x))) + W\,\mathrm{emb}`,
  :math:`\mathrm{out} = \mathrm{skip}(x) + \mathrm{conv}(\mathrm{drop}(\mathrm{SiLU}(\mathrm{GN}(h))))`.
* Class conditioning for classifier-free guidance (Ho & Salimans, 2022,
  https://arxiv.org/abs/2207.12598): a learned embedding of :math:`K + 1` classes
  is added to the time embedding; index :math:`K` is the null class :math:`\varnothing`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.attention import SelfAttention2d
from archzoo.layers.checkpoint import GradCheckpointing, checkpointed
from archzoo.layers.embedding import timestep_embedding
from archzoo.layers.norm import group_norm
from archzoo.models._example import param_device
from archzoo.utils import image_hw


class ResBlock(nn.Module):
    """Residual block with GroupNorm, SiLU, dropout and an additive embedding (time + class).

    Args:
        in_channels: input channels.
        out_channels: output channels (a 1x1 conv matches the skip when they differ).
        emb_dim: embedding size.
        dropout: dropout before the second conv (default 0).
        groups: GroupNorm groups (default 8).

    Shapes:
        ``x`` :math:`(B, C_{in}, H, W)`, ``emb`` :math:`(B, E)`, output :math:`(B, C_{out}, H, W)`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0, groups: int = 8
    ) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # the block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]  # (B, C_out, 1, 1) broadcast over H, W
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    """3x3 stride-2 convolution: ``(B, C, H, W) -> (B, C, H/2, W/2)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest upsampling and a 3x3 convolution: ``(B, C, H, W) -> (B, C, 2H, 2W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResAttnBlock(nn.Module):
    """A :class:`ResBlock`, followed by :class:`SelfAttention2d` when ``attn`` is set."""

    def __init__(
        self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int, attn: bool, heads: int
    ) -> None:
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, dropout, groups)
        self.attn = SelfAttention2d(out_ch, heads, groups) if attn else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNet(GradCheckpointing, nn.Module):
    r"""DDPM's U-Net :math:`\epsilon_\theta(x_t, t, y)`.

    The encoder has ``len(channel_mults)`` levels of ``num_res_blocks`` residual
    blocks at width ``base_channels * mult``, halving the resolution between
    levels; the decoder mirrors it with ``num_res_blocks + 1`` blocks per level,
    each taking the matching encoder activation as a concatenated skip.

    Args:
        in_channels: image channels (default 1).
        image_size: image side or ``(H, W)``, divisible by :math:`2^{\text{levels}-1}` (default 28).
        base_channels: width of the first level (default 64).
        channel_mults: width multipliers per level; 28 -> 14 -> 7 for three levels (default ``(1, 2, 2)``).
        num_res_blocks: residual blocks per encoder level (default 2).
        attn_resolutions: resolutions (image sides) with self-attention; ``None`` means the
            lowest one only, ``()`` none. The middle block has attention unless ``()``. (default None)
        dropout: dropout in residual blocks (default 0.1).
        num_classes: classes for conditioning, 0 for none; index ``num_classes`` is the null class (default 0).
        heads: attention heads (default 4).
        groups: GroupNorm groups (default 8).

    Shapes:
        ``x`` :math:`(B, C, H, W)`, ``t`` :math:`(B,)` (int or float), ``labels`` :math:`(B,)`, output :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        base_channels: int = 64,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] | None = None,
        dropout: float = 0.1,
        num_classes: int = 0,
        heads: int = 4,
        groups: int = 8,
    ) -> None:
        super().__init__()
        h, w = image_hw(image_size)
        levels = len(channel_mults)
        f = 2 ** (levels - 1)
        if h % f or w % f:
            raise UserError(f"UNet with {levels} levels needs an image size divisible by {f}; got {h}x{w}.")
        lowest = min(h, w) // f
        attn_res = {lowest} if attn_resolutions is None else set(attn_resolutions)
        self.in_channels = in_channels
        self.image_hw = (h, w)
        self.num_classes = num_classes
        self.is_conditional = num_classes > 0
        self.base_channels = base_channels
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # K classes plus the null class (index K) used when the label is dropped.
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        blk = dict(emb_dim=emb_dim, dropout=dropout, groups=groups, heads=heads)
        self.down = nn.ModuleList()
        skips = [base_channels]
        ch, res = base_channels, min(h, w)
        for level, mult in enumerate(channel_mults):
            out = base_channels * mult
            for _ in range(num_res_blocks):
                self.down.append(ResAttnBlock(ch, out, attn=res in attn_res, **blk))
                ch = out
                skips.append(ch)
            if level != levels - 1:
                self.down.append(Downsample(ch))
                res //= 2
                skips.append(ch)
        mid_attn = len(attn_res) > 0
        self.mid = nn.ModuleList([ResAttnBlock(ch, ch, attn=mid_attn, **blk), ResAttnBlock(ch, ch, attn=False, **blk)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            out = base_channels * mult
            for _ in range(num_res_blocks + 1):
                self.up.append(ResAttnBlock(ch + skips.pop(), out, attn=res in attn_res, **blk))
                ch = out
            if level != 0:
                self.up.append(Upsample(ch))
                res *= 2
        self.out = nn.Sequential(group_norm(ch, groups), nn.SiLU(), nn.Conv2d(ch, in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def embed(self, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """Time (+ class) embedding, ``(B, 4 * base_channels)``; ``labels=None`` is the null class."""
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))  # (B, E)
        if self.class_emb is not None:
            if labels is None:
                labels = torch.full((t.shape[0],), self.num_classes, dtype=torch.long, device=t.device)
            emb = emb + self.class_emb(labels)
        return emb

    def example_input(self, batch_size: int = 2, timesteps: int = 1000) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(x, t, labels)``: noise :math:`(B, C, H, W)`, steps below ``timesteps`` and class labels (or None)."""
        dev = param_device(self)
        x = torch.randn(batch_size, self.in_channels, *self.image_hw, device=dev)
        t = torch.randint(0, timesteps, (batch_size,), device=dev)
        labels = torch.arange(batch_size, device=dev) % self.num_classes if self.is_conditional else None
        return x, t, labels

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t, labels)
        h = self.stem(x)
        hs = [h]
        ckpt = self.grad_checkpointing  # recompute each residual block in backward (set_grad_checkpointing)
        for m in self.down:
            h = checkpointed(m, h, emb, enabled=ckpt and isinstance(m, ResAttnBlock))
            hs.append(h)
        for m in self.mid:
            h = checkpointed(m, h, emb, enabled=ckpt)
        for m in self.up:
            if isinstance(m, Upsample):
                h = m(h)
            else:
                h = checkpointed(m, torch.cat([h, hs.pop()], dim=1), emb, enabled=ckpt)  # (B, C + C_skip, H, W)
        return self.out(h)
