"""Attention: multi-head self-attention over a feature map, and multi-head attention over sequences."""

from __future__ import annotations

from typing import Any

import torch
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


# ----------------------------------------------------------------------------- multi-head attention over sequences
#
# Scaled dot-product attention (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762):
#
#     Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + M) V
#
# with M = 0 where a query may attend a key and -inf where it may not (padding, the future).
# The kernels below compute it from per-head queries, keys and values; MultiHeadAttention
# owns the projections around them. Approximations for long sequences (chunked, Linformer,
# Performer, LSH) register themselves from archzoo.layers.long_attention under the same
# interface.


def causal_mask(t: int, s: int, device: torch.device | None = None) -> Tensor:
    """Boolean :math:`(T, S)`, true where query :math:`i` may attend key :math:`j`.

    The queries are the last :math:`T` of :math:`S` positions (a decoder step with a cache of
    :math:`S - T` earlier keys): query :math:`i` sits at position :math:`S - T + i` and sees keys
    :math:`j \\le S - T + i`.
    """
    i = torch.arange(t, device=device)[:, None] + (s - t)
    return torch.arange(s, device=device)[None, :] <= i


def merge_masks(mask: Tensor | None, causal: bool, t: int, s: int, device: torch.device) -> Tensor | None:
    """One boolean mask broadcastable to :math:`(B, h, T, S)` from an optional mask and the causal rule."""
    if not causal:
        return mask
    c = causal_mask(t, s, device)  # (T, S)
    return c if mask is None else mask & c


def manual_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False, dropout: float = 0.0
) -> tuple[Tensor, Tensor]:
    r"""Softmax attention written out: :math:`\mathrm{softmax}(QK^\top/\sqrt d + M)\,V` and the weights.

    Args:
        q, k, v: :math:`(B, h, T, d)`, :math:`(B, h, S, d)`, :math:`(B, h, S, d_v)`.
        mask: boolean, broadcastable to :math:`(B, h, T, S)`, true where attending is allowed.
        causal: also forbid keys after each query (bottom-right aligned when :math:`S > T`).
        dropout: dropout on the attention weights (applied only when the caller is training).

    Returns:
        the output :math:`(B, h, T, d_v)` and the weights :math:`(B, h, T, S)` (before dropout).
    """
    t, s = q.shape[-2], k.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)  # (B, h, T, S)
    m = merge_masks(mask, causal, t, s, q.device)
    if m is not None:
        scores = scores.masked_fill(~m, float("-inf"))
    weights = scores.softmax(-1)  # (B, h, T, S)
    dropped = torch.nn.functional.dropout(weights, dropout) if dropout > 0 else weights
    return dropped @ v, weights  # (B, h, T, d_v)


class AttentionKernel(nn.Module):
    """Computes attention from per-head ``q, k, v``; subclasses register under a name in :data:`ATTENTION`.

    ``forward(q, k, v, mask, causal, dropout)`` returns ``(out, weights or None)``; ``exact`` says
    whether the kernel computes softmax attention exactly (so its weights are those of
    :func:`manual_attention`), ``supports_cache`` whether it can attend over a KV cache.
    """

    exact = True
    supports_cache = True

    def __init__(self, heads: int, head_dim: int, max_len: int | None = None) -> None:
        super().__init__()
        self.heads, self.head_dim, self.max_len = heads, head_dim, max_len


#: Attention kernels by name (``model.args.attention``); the long-sequence ones join on import.
ATTENTION: dict[str, type[AttentionKernel]] = {}


def register_attention(name: str) -> Any:
    def deco(cls: type[AttentionKernel]) -> type[AttentionKernel]:
        ATTENTION[name] = cls
        cls.kernel_name = name
        return cls

    return deco


@register_attention("manual")
class ManualAttention(AttentionKernel):
    """:func:`manual_attention`: the lesson, and the path that can return the weights."""

    def forward(self, q, k, v, mask, causal, dropout):  # type: ignore[no-untyped-def]
        return manual_attention(q, k, v, mask, causal, dropout)


@register_attention("sdpa")
class SDPAttention(AttentionKernel):
    """``torch.nn.functional.scaled_dot_product_attention``: fused kernels (flash or memory-efficient)."""

    def forward(self, q, k, v, mask, causal, dropout):  # type: ignore[no-untyped-def]
        t, s = q.shape[-2], k.shape[-2]
        if causal and mask is None and t == s:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True), None
        m = merge_masks(mask, causal, t, s, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, dropout_p=dropout), None


def make_attention(name: str, heads: int, head_dim: int, max_len: int | None = None, **options: Any) -> AttentionKernel:
    """The kernel registered as ``name``, built for ``heads`` heads of ``head_dim`` (options are the kernel's own)."""
    if name not in ATTENTION:
        import archzoo.layers.long_attention  # noqa: F401 - registers the long-sequence kernels
    if name not in ATTENTION:
        raise UserError(f"model.args.attention must be one of {', '.join(sorted(ATTENTION))}, got '{name}'.")
    cls = ATTENTION[name]
    try:
        return cls(heads, head_dim, max_len, **options)
    except TypeError as e:
        raise UserError(f"Attention '{name}' does not take the options {sorted(options)}: {e}.") from None


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer during generation.

    Allocated lazily at the first :meth:`append` for ``capacity`` positions, then written in
    place, so a step costs no concatenation. It is a plain object held by the generating loop,
    never a parameter or buffer: it enters no state_dict, checkpoint or weight average.
    A cross-attention cache is filled once (``static``) with the projected encoder memory.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.length = 0

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add ``k, v`` :math:`(B, h, T, d)` after the cached positions; return all of them :math:`(B, h, L, d)`."""
        t = k.shape[-2]
        if self.k is None:
            b, h, _, d = k.shape
            self.k = k.new_empty(b, h, self.capacity, d)
            self.v = v.new_empty(b, h, self.capacity, v.shape[-1])
        assert self.v is not None
        if self.length + t > self.capacity:
            raise UserError(
                f"The sequence grew to {self.length + t} positions, past the model's {self.capacity} (its block size)."
            )
        self.k[:, :, self.length : self.length + t] = k
        self.v[:, :, self.length : self.length + t] = v
        self.length += t
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def set(self, k: Tensor, v: Tensor) -> None:
        """Hold ``k, v`` as they are (a cross-attention cache of the encoder memory)."""
        self.k, self.v, self.length = k, v, k.shape[-2]

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` of the batch (beam search's surviving hypotheses)."""
        if self.k is not None and self.v is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762).

    .. math::
        \mathrm{MHA}(x, m) = [\mathrm{head}_1; \dots; \mathrm{head}_h] W_O, \qquad
        \mathrm{head}_i = \mathrm{Attention}(x W_Q^i, m W_K^i, m W_V^i)

    with :math:`m = x` for self-attention. Self-attention projects :math:`Q, K, V` with one
    fused matrix ``qkv`` (the layout of ``nn.MultiheadAttention.in_proj_weight``);
    cross-attention projects the queries with ``q`` and the memory with ``kv``.

    Args:
        dim: model width, divisible by ``heads``.
        heads: attention heads :math:`h`.
        dropout: dropout on the attention weights (default 0).
        bias: biases on the projections (default True).
        cross: attend over a separate memory (default False: self-attention).
        memory_dim: width of the memory (default ``dim``).
        attention: kernel name: ``"sdpa"`` (default, PyTorch's fused kernel), ``"manual"`` (written
            out), or a long-sequence kernel (``chunked``, ``linformer``, ``performer``, ``lsh``).
        max_len: longest sequence (needed by kernels with per-position parameters, e.g. Linformer).
        rope: a :class:`~archzoo.layers.positional.RotaryEmbedding` applied to queries and keys.
        attention_options: the kernel's own options.

    Shapes:
        ``x`` :math:`(B, T, D)`; ``memory`` :math:`(B, S, D_m)`; ``key_mask`` :math:`(B, S)` true at
        real keys; ``attn_mask`` boolean broadcastable to :math:`(B, h, T, S)`. Returns
        :math:`(B, T, D)` and, with ``need_weights``, the weights :math:`(B, h, T, S)`.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        cross: bool = False,
        memory_dim: int | None = None,
        attention: str = "sdpa",
        max_len: int | None = None,
        rope: nn.Module | None = None,
        attention_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise UserError(f"The model width {dim} must divide by the number of heads {heads}.")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.dropout, self.cross = dropout, cross
        if cross:
            self.q = nn.Linear(dim, dim, bias=bias)
            self.kv = nn.Linear(memory_dim or dim, 2 * dim, bias=bias)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
        self.kernel = make_attention(attention, heads, self.head_dim, max_len, **(attention_options or {}))
        self.rope = rope

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, d)

    def project(self, x: Tensor, memory: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Per-head queries, keys and values, each :math:`(B, h, \\cdot, d)`."""
        if self.cross:
            if memory is None:
                raise UserError("Cross-attention needs the encoder memory.")
            k, v = self.kv(memory).chunk(2, -1)  # (B, S, D) each
            return self._heads(self.q(x)), self._heads(k), self._heads(v)
        q, k, v = self.qkv(x).chunk(3, -1)  # (B, T, D) each
        return self._heads(q), self._heads(k), self._heads(v)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        *,
        key_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        b, t, _ = x.shape
        if self.cross and cache is not None and cache.k is not None:
            q = self._heads(self.q(x))  # the memory's keys and values were projected at the first step
            k, v = cache.k, cache.v
        else:
            q, k, v = self.project(x, memory)
            if self.rope is not None:
                offset = cache.length if cache is not None else 0
                q, k = self.rope(q, offset), self.rope(k, offset)
            if cache is not None:
                if self.cross:
                    cache.set(k, v)
                else:
                    if not self.kernel.supports_cache:
                        raise UserError(f"Attention '{self.kernel.kernel_name}' cannot decode with a KV cache.")
                    k, v = cache.append(k, v)
        assert k is not None and v is not None
        mask = attn_mask
        if key_mask is not None:
            km = key_mask[:, None, None, :]  # (B, 1, 1, S)
            mask = km if mask is None else mask & km
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            if not self.kernel.exact:
                raise UserError(
                    f"Attention '{self.kernel.kernel_name}' approximates softmax: it has no weights to show."
                )
            out, weights = manual_attention(q, k, v, mask, causal, dropout)
        else:
            out, weights = self.kernel(q, k, v, mask, causal, dropout)
            weights = None
        out = out.transpose(1, 2).reshape(b, t, self.dim)  # (B, T, D)
        return self.out(out), weights
