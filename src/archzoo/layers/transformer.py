r"""Transformer blocks: the position-wise feed-forward network and the (pre- or post-norm) block.

A block (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762) is self-attention, then, in a
decoder of an encoder-decoder, cross-attention over the encoder's memory, then a feed-forward
network :math:`\mathrm{FFN}(x) = W_2\,\phi(W_1 x + b_1) + b_2`, each wrapped in a residual
connection and a LayerNorm:

.. math::
    \text{post-norm:}\quad x \leftarrow \mathrm{LN}(x + f(x)) \qquad
    \text{pre-norm:}\quad x \leftarrow x + f(\mathrm{LN}(x))

Post-norm is the original; pre-norm (Xiong et al. 2020, https://arxiv.org/abs/2002.04745; GPT-2)
trains deep stacks without a warm-up. With the same weights a block equals
``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` with the same ``norm_first``
(tests/layers/test_transformer.py).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from archzoo.layers.activation import get_activation
from archzoo.layers.attention import KVCache, MultiHeadAttention
from archzoo.layers.checkpoint import checkpointed


class FeedForward(nn.Module):
    """:math:`W_2\\,\\mathrm{dropout}(\\phi(W_1 x))`, with :math:`\\phi` named by ``activation``.

    Args:
        dim: model width.
        hidden: inner width (default ``4 * dim``).
        activation: ``"gelu"`` (default), ``"relu"``, or any name of :func:`~archzoo.layers.activation.get_activation`.
        dropout: dropout after the activation (default 0).
        bias: biases on both linears (default True).
    """

    def __init__(
        self, dim: int, hidden: int | None = None, activation: str = "gelu", dropout: float = 0.0, bias: bool = True
    ) -> None:
        super().__init__()
        hidden = hidden or 4 * dim
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = get_activation(activation)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, and a feed-forward network, each residual and normalised.

    Args:
        dim: model width.
        heads: attention heads.
        ff_dim: feed-forward inner width (default ``4 * dim``).
        dropout: dropout on each sub-layer's output and inside the feed-forward (default 0).
        attn_dropout: dropout on the attention weights (default ``dropout``).
        activation: feed-forward activation by name (default ``"gelu"``).
        norm_first: pre-norm (default True) or post-norm (False, the original).
        cross: add cross-attention over an encoder memory (a decoder block, default False).
        bias: biases in linears and LayerNorms (default True).
        eps: LayerNorm epsilon (default 1e-5).
        attention: the self-attention kernel by name (default ``"sdpa"``).
        max_len: longest sequence (for kernels with per-position parameters).
        rope: a shared :class:`~archzoo.layers.positional.RotaryEmbedding` for self-attention.
        attention_options: the kernel's own options.

    Shapes:
        ``x`` :math:`(B, T, D)`, ``memory`` :math:`(B, S, D)`, ``key_mask`` :math:`(B, T)` and
        ``memory_mask`` :math:`(B, S)` true at real tokens; ``attn_mask`` a boolean self-attention mask
        broadcastable to :math:`(B, h, T, T_{cache})`, true where attending is allowed. Returns :math:`(B, T, D)` and a dict of
        attention weights (``"self"``, ``"cross"``) when ``need_weights``, else None.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_dim: int | None = None,
        dropout: float = 0.0,
        attn_dropout: float | None = None,
        activation: str = "gelu",
        norm_first: bool = True,
        cross: bool = False,
        bias: bool = True,
        eps: float = 1e-5,
        attention: str = "sdpa",
        max_len: int | None = None,
        rope: nn.Module | None = None,
        attention_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        ad = dropout if attn_dropout is None else attn_dropout
        self.norm_first = norm_first
        self.attn = MultiHeadAttention(
            dim, heads, ad, bias, attention=attention, max_len=max_len, rope=rope, attention_options=attention_options
        )
        self.norm1 = nn.LayerNorm(dim, eps=eps, bias=bias)
        self.cross_attn = MultiHeadAttention(dim, heads, ad, bias, cross=True) if cross else None
        self.norm_cross = nn.LayerNorm(dim, eps=eps, bias=bias) if cross else None
        self.ff = FeedForward(dim, ff_dim, activation, dropout, bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps, bias=bias)
        self.drop = nn.Dropout(dropout)
        # Set by the model's set_grad_checkpointing (layers/checkpoint.py): in training with grad
        # enabled, and without a KV cache or attention weights, the block is recomputed in backward.
        self.grad_checkpointing = False

    def _sub(self, x: Tensor, norm: nn.Module, f: Any) -> tuple[Tensor, Any]:
        if self.norm_first:
            y, w = f(norm(x))
            return x + self.drop(y), w
        y, w = f(x)
        return norm(x + self.drop(y)), w

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        *,
        key_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        causal: bool = False,
        cache: tuple[KVCache, KVCache | None] | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor] | None]:
        if self.grad_checkpointing and cache is None and not need_weights:
            # Keep only x (and memory) for the backward; the sub-layers run again there.
            return checkpointed(
                self._forward, x, memory, enabled=True, module=self,
                key_mask=key_mask, memory_mask=memory_mask, attn_mask=attn_mask, causal=causal,
            )  # fmt: skip
        return self._forward(x, memory, key_mask, memory_mask, attn_mask, causal, cache, need_weights)

    def _forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        key_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        causal: bool = False,
        cache: tuple[KVCache, KVCache | None] | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor] | None]:
        self_cache, cross_cache = cache if cache is not None else (None, None)
        x, w_self = self._sub(
            x,
            self.norm1,
            lambda h: self.attn(
                h, key_mask=key_mask, attn_mask=attn_mask, causal=causal, cache=self_cache, need_weights=need_weights
            ),
        )
        w_cross = None
        if self.cross_attn is not None:
            x, w_cross = self._sub(
                x,
                self.norm_cross,
                lambda h: self.cross_attn(  # type: ignore[misc]
                    h, memory, key_mask=memory_mask, cache=cross_cache, need_weights=need_weights
                ),
            )
        x, _ = self._sub(x, self.norm2, lambda h: (self.ff(h), None))
        if not need_weights:
            return x, None
        weights = {"self": w_self}
        if w_cross is not None:
            weights["cross"] = w_cross
        return x, weights
