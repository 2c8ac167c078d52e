r"""Positional encodings: sinusoidal, learned, and rotary (RoPE).

Attention is blind to order; these give each position an identity.

* :class:`SinusoidalPositions` (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762) adds a
  fixed table :math:`P_{t, 2i} = \sin(t / 10000^{2i/D})`, :math:`P_{t, 2i+1} = \cos(t / 10000^{2i/D})`.
* :class:`LearnedPositions` (BERT, GPT) adds a trained embedding of the position.
* :class:`RotaryEmbedding` (Su et al. 2021, https://arxiv.org/abs/2104.09864) rotates each pair of
  query and key channels by an angle proportional to the position, so that
  :math:`\langle R_m q, R_n k \rangle` depends on :math:`m - n` alone.

Positions past the table are a :class:`~archzoo.errors.UserError` naming the limit, never a
silent wrap-around or an index error. The fixed tables are non-persistent buffers: they follow
the module's device and dtype but stay out of state_dicts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from archzoo.errors import UserError

#: The positional encodings that models name in ``model.args.positions``.
POSITIONS = ("sinusoidal", "learned", "rope", "none")


def _check(offset: int, t: int, max_len: int) -> None:
    if offset + t > max_len:
        raise UserError(
            f"The input reaches position {offset + t}, past the model's {max_len} positions; "
            "shorten it (or crop it to the last positions)."
        )


def sinusoid_table(max_len: int, dim: int, base: float = 10000.0) -> Tensor:
    """The :math:`(L, D)` table of :class:`SinusoidalPositions`: sines in even channels, cosines in odd ones."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (L, 1)
    inv = torch.exp(-math.log(base) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (ceil(D/2),)
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: dim // 2])
    return table.float()


class SinusoidalPositions(nn.Module):
    """Add the fixed sinusoid table to token embeddings.

    Args:
        dim: embedding width :math:`D`.
        max_len: positions in the table.

    Shapes:
        :math:`(B, T, D)` in and out; ``offset`` is the position of the first token.
    """

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoid_table(max_len, dim), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[1]
        _check(offset, t, self.max_len)
        return x + self.table[offset : offset + t].to(x.dtype)


class LearnedPositions(nn.Module):
    """Add a trained embedding of each position (BERT, GPT-2).

    Args:
        dim: embedding width :math:`D`.
        max_len: positions in the table.

    Shapes:
        :math:`(B, T, D)` in and out.
    """

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[1]
        _check(offset, t, self.max_len)
        return x + self.weight[offset : offset + t].to(x.dtype)


def rotate_half(x: Tensor) -> Tensor:
    """:math:`[x_1; x_2] \\mapsto [-x_2; x_1]` over the last dimension (the two halves of the channels)."""
    x1, x2 = x.chunk(2, -1)
    return torch.cat([-x2, x1], -1)


class RotaryEmbedding(nn.Module):
    r"""Rotary position embedding of per-head queries or keys.

    Channel :math:`i < d/2` and channel :math:`i + d/2` form a pair rotated by
    :math:`\theta_{t,i} = t \cdot \mathrm{base}^{-2i/d}`:

    .. math::
        \mathrm{RoPE}(x)_t = x_t \odot \cos\theta_t + \mathrm{rotate\_half}(x_t) \odot \sin\theta_t

    (the half-split pairing of GPT-NeoX and LLaMA; the interleaved pairing of the paper is the
    same map up to a fixed permutation of the channels).

    Args:
        head_dim: channels per head :math:`d`, even.
        max_len: positions in the table.
        base: the frequency base (default 10000).

    Shapes:
        :math:`(B, h, T, d)` in and out; ``offset`` is the position of the first row.
    """

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise UserError(f"Rotary positions need an even head width, got {head_dim}.")
        self.max_len = max_len
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (d/2,)
        angles = torch.arange(max_len, dtype=torch.float64)[:, None] * inv  # (L, d/2)
        angles = torch.cat([angles, angles], -1)  # (L, d)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        _check(offset, t, self.max_len)
        cos = self.cos[offset : offset + t].to(x.dtype)  # (T, d)
        sin = self.sin[offset : offset + t].to(x.dtype)
        return x * cos + rotate_half(x) * sin


def make_positions(kind: str, dim: int, max_len: int) -> nn.Module | None:
    """The additive encoding named ``kind`` (None for ``"rope"``, which acts inside attention, and ``"none"``)."""
    if kind == "sinusoidal":
        return SinusoidalPositions(dim, max_len)
    if kind == "learned":
        return LearnedPositions(dim, max_len)
    if kind in ("rope", "none"):
        return None
    raise UserError(f"model.args.positions must be one of {', '.join(POSITIONS)}, got '{kind}'.")
