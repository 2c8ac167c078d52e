r"""The encoder-decoder Transformer (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762).

Source and target tokens are embedded, scaled by :math:`\sqrt{d}` and given positions
(sinusoidal by default, learned, or rotary inside the self-attention):
:math:`h^0 = \sqrt{d}\,E[x] + P`. The encoder is a stack of self-attention blocks whose keys
are the real source tokens only; the decoder is a stack of blocks with causal self-attention
and cross-attention over the encoder's memory, whose keys again are the real source tokens:

.. math::
    \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Big(\frac{Q K^\top}{\sqrt{d_k}} + M\Big) V,
    \qquad M_{tj} = \begin{cases} 0 & \text{allowed} \\ -\infty & \text{masked} \end{cases}

with, in the encoder and in cross-attention, :math:`M_{tj} = -\infty` at source padding
:math:`j \ge n_x`, and in the decoder's self-attention :math:`M_{tj} = -\infty` for
:math:`j > t` (causal). The decoder's own padding needs no key mask: under the causal mask a
real target position only sees earlier, real positions, and the loss ignores padded ones.
Then :math:`p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W_o h^L_t)` with :math:`W_o` optionally
tied to the target embedding (the paper shares it).

Training is teacher forced: the decoder reads ``<bos>`` :math:`y_1 \dots y_{T-1}` and all
positions are scored at once. Decoding (:meth:`Transformer.greedy`, :meth:`Transformer.beam_search`)
computes the memory once and feeds one token per step, each decoder layer holding a
:class:`~archzoo.layers.attention.KVCache` of its self-attention (appended each step,
reordered with the surviving beams) and one of its cross-attention (the projected memory,
set at the first step).

``norm_first=False`` is the paper's post-norm block; pre-norm (the default) adds a final
LayerNorm after each stack.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.attention import KVCache
from archzoo.layers.checkpoint import GradCheckpointing
from archzoo.layers.positional import RotaryEmbedding, make_positions
from archzoo.layers.transformer import TransformerBlock
from archzoo.models._variant import variant
from archzoo.models.seq2seq import beam_decode
from archzoo.registry import register_model

POSITIONS = ("sinusoidal", "learned", "rope")


class Transformer(GradCheckpointing, nn.Module):
    r"""An encoder-decoder Transformer for sequence to sequence (see the module docstring).

    Args:
        src_vocab_size: source token ids, padding included.
        tgt_vocab_size: target token ids :math:`V`, padding, ``<bos>`` and ``<eos>`` included.
        pad_id: the padding id of both vocabularies (default 0).
        bos_id: the target's begin-of-sequence id (default 1).
        eos_id: the target's end-of-sequence id (default 2).
        dim: model width :math:`d` (default 128).
        heads: attention heads (default 4).
        encoder_layers: encoder blocks (default 2).
        decoder_layers: decoder blocks (default 2).
        ff_dim: feed-forward inner width (default ``4 * dim``).
        dropout: dropout on embeddings, sub-layer outputs and attention weights (default 0.1).
        activation: feed-forward activation (default ``"relu"``, the paper's).
        norm_first: pre-norm (default True) or the paper's post-norm (False).
        positions: ``"sinusoidal"`` (default), ``"learned"`` or ``"rope"``.
        max_len: longest source or target sequence, decoding included (default 256).
        tie_embeddings: the output projection shares the target embedding's weights (default True).
        attention: self-attention kernel by name (default ``"sdpa"``); cross-attention is exact.

    Shapes:
        ``forward`` takes a :class:`~archzoo.data.splits.PaddedBatch` with ``x`` :math:`(B, L_x)`,
        ``lengths`` :math:`(B,)`, targets ``y`` :math:`(B, L_y)` ending in ``<eos>``; returns
        logits :math:`(B, L_y, V)`.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
        dim: int = 128,
        heads: int = 4,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        ff_dim: int | None = None,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = True,
        positions: str = "sinusoidal",
        max_len: int = 256,
        tie_embeddings: bool = True,
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise UserError(f"model.args.positions must be one of {', '.join(POSITIONS)}, got '{positions}'.")
        if dim % heads:
            raise UserError(f"model.args.dim ({dim}) must be divisible by model.args.heads ({heads}).")
        if encoder_layers < 1 or decoder_layers < 1:
            raise UserError("model.args.encoder_layers and decoder_layers must be at least 1.")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.dim, self.heads, self.max_len, self.norm_first = dim, heads, max_len, norm_first
        #: the self-attention kernel's name; cross-attention weights always exist (the task's test for a map)
        self.attention = attention
        self.src_embed = nn.Embedding(src_vocab_size, dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, dim, padding_idx=pad_id)
        for e in (self.src_embed, self.tgt_embed):  # sqrt(d) * E[x] then has unit scale
            nn.init.normal_(e.weight, 0.0, dim**-0.5)
            with torch.no_grad():
                e.weight[pad_id].zero_()
        self.positions = make_positions(positions, dim, max_len)
        self.rope = RotaryEmbedding(dim // heads, max_len) if positions == "rope" else None
        self.drop = nn.Dropout(dropout)

        def block(cross: bool) -> TransformerBlock:
            return TransformerBlock(
                dim, heads, ff_dim, dropout, activation=activation, norm_first=norm_first, cross=cross,
                attention=attention, max_len=max_len, rope=self.rope,
            )  # fmt: skip

        self.encoder = nn.ModuleList(block(False) for _ in range(encoder_layers))
        self.decoder = nn.ModuleList(block(True) for _ in range(decoder_layers))
        # post-norm blocks end in a LayerNorm already; pre-norm stacks need a final one
        self.encoder_norm = nn.LayerNorm(dim) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(dim) if norm_first else nn.Identity()
        self.head = nn.Linear(dim, tgt_vocab_size, bias=False)
        if tie_embeddings:
            self.head.weight = self.tgt_embed.weight

    # ------------------------------------------------------------------ stacks

    def _embed(self, table: nn.Embedding, ids: Tensor, offset: int = 0) -> Tensor:
        x = table(ids) * math.sqrt(self.dim)  # (B, T, D)
        if self.positions is not None:
            x = self.positions(x, offset)
        return self.drop(x)

    def encode(self, src: Tensor, src_lengths: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor, list]:
        """The memory :math:`(B, L_x, D)`, its mask :math:`(B, L_x)` (true at real tokens), per-layer weights."""
        mask = torch.arange(src.shape[1], device=src.device) < src_lengths.to(src.device)[:, None]  # (B, L_x)
        x = self._embed(self.src_embed, src)
        weights = []
        for blk in self.encoder:
            x, w = blk(x, key_mask=mask, need_weights=need_weights)
            if w is not None:
                weights.append(w["self"])  # (B, h, L_x, L_x)
        return self.encoder_norm(x), mask, weights

    def decode(
        self,
        tgt_in: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        caches: list[tuple[KVCache, KVCache]] | None = None,
        offset: int = 0,
        need_weights: str | None = None,
    ) -> tuple[Tensor, list[dict[str, Tensor]]]:
        """Logits :math:`(B, T, V)` of the decoder inputs ``tgt_in`` :math:`(B, T)` at positions ``offset...``.

        ``need_weights``: ``"last"`` (the last layer's weights), ``"all"`` or None.
        """
        x = self._embed(self.tgt_embed, tgt_in, offset)
        weights = []
        n = len(self.decoder)
        for i, blk in enumerate(self.decoder):
            want = need_weights == "all" or (need_weights == "last" and i == n - 1)
            x, w = blk(
                x, memory, memory_mask=memory_mask, causal=True, cache=caches[i] if caches else None, need_weights=want
            )
            if w is not None:
                weights.append(w)  # {"self": (B, h, T, S), "cross": (B, h, T, L_x)}
        return self.head(self.decoder_norm(x)), weights  # (B, T, V)

    # ------------------------------------------------------------------ training

    def _decoder_inputs(self, y: Tensor) -> Tensor:
        bos = torch.full_like(y[:, :1], self.bos_id)
        return torch.cat([bos, y[:, :-1]], 1)  # (B, L_y): <bos>, y_1, ..., y_{L_y - 1}

    def forward(self, batch: Any) -> Tensor:
        """Teacher-forced logits :math:`(B, L_y, V)` of the targets ``batch.y`` given ``batch.x``."""
        memory, mask, _ = self.encode(batch.x, batch.lengths)
        logits, _ = self.decode(self._decoder_inputs(batch.y), memory, mask)
        return logits

    @torch.no_grad()
    def attention_maps(self, src: Tensor, src_lengths: Tensor, y: Tensor) -> dict[str, list[Tensor]]:
        """Every layer's and head's weights for sources and (teacher-forced) outputs ``y`` :math:`(B, T)`.

        Returns ``{"encoder_self": [(B, h, L_x, L_x)] per layer, "decoder_self": [(B, h, T, T)],
        "decoder_cross": [(B, h, T, L_x)]}``; decoder rows are the positions predicting ``y``.
        """
        memory, mask, enc = self.encode(src, src_lengths, need_weights=True)
        _, dec = self.decode(self._decoder_inputs(y), memory, mask, need_weights="all")
        return {
            "encoder_self": enc,
            "decoder_self": [w["self"] for w in dec],
            "decoder_cross": [w["cross"] for w in dec],
        }

    # ------------------------------------------------------------------ decoding

    def _allowed(self, logits: Tensor) -> Tensor:
        """Logits with ``<pad>`` and ``<bos>`` ruled out: a decoder never emits them."""
        logits = logits.float().clone()
        logits[:, [self.pad_id, self.bos_id]] = float("-inf")
        return logits

    def _caches(self, max_len: int) -> list[tuple[KVCache, KVCache]]:
        return [(KVCache(max_len), KVCache(max_len)) for _ in self.decoder]

    def _step(
        self, prev: Tensor, t: int, memory: Tensor, mask: Tensor, caches: list[tuple[KVCache, KVCache]]
    ) -> tuple[Tensor, Tensor]:
        """Logits :math:`(B, V)` after token ``prev`` :math:`(B,)` at position ``t``, and the last layer's
        cross-attention averaged over heads :math:`(B, L_x)`."""
        logits, w = self.decode(prev[:, None], memory, mask, caches, offset=t, need_weights="last")
        return logits[:, -1], w[-1]["cross"][:, :, -1].mean(1)  # (B, V), (B, L_x)

    def _check_len(self, max_len: int) -> int:
        if max_len < 1:
            raise UserError(f"The longest decoded output must be at least 1 token, got {max_len}.")
        return min(max_len, self.max_len)  # the position table bounds the output

    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int = 50) -> tuple[Tensor, Tensor]:
        """Decode by the most probable token at every step, for the whole batch at once.

        Returns the ids :math:`(B, T)` (``<eos>`` included where reached, ``pad_id`` after it,
        :math:`T \\le` ``max_len``) and the last layer's cross-attention averaged over heads
        :math:`(B, T, L_x)` (zeros after ``<eos>``).
        """
        max_len = self._check_len(max_len)
        memory, mask, _ = self.encode(src, src_lengths)
        b = src.shape[0]
        caches = self._caches(max_len)
        prev = torch.full((b,), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        ids, alphas = [], []
        for t in range(max_len):
            logits, alpha = self._step(prev, t, memory, mask, caches)
            tok = self._allowed(logits).argmax(-1).masked_fill(done, self.pad_id)  # (B,)
            alphas.append(alpha.float().masked_fill(done[:, None], 0.0))
            ids.append(tok)
            done = done | (tok == self.eos_id)
            prev = tok
            if bool(done.all()):
                break
        return torch.stack(ids, 1), torch.stack(alphas, 1)

    @torch.no_grad()
    def beam_search(
        self, src: Tensor, src_lengths: Tensor, beam: int = 4, max_len: int = 50, length_penalty: float = 0.6
    ) -> tuple[Tensor, Tensor]:
        r"""Keep the ``beam`` most probable prefixes of every example; return the best finished one.

        As :meth:`~archzoo.models.seq2seq.Seq2Seq.beam_search`: :math:`B \cdot k` rows decoded as
        one batch, finished hypotheses frozen (extended by padding at log-probability 0), the
        answer maximising :math:`\log p(y \mid x) / |y|^\alpha`. The memory is computed once per
        example and repeated over its beams; the self-attention caches follow the surviving
        beams (:meth:`~archzoo.layers.attention.KVCache.reorder`). The cross-attention caches
        need no reordering: a beam only ever moves among rows of its own example, which hold
        the same memory.

        Returns the ids :math:`(B, T)` and the attention :math:`(B, T, L_x)`, as :meth:`greedy`.
        """
        if beam < 1:
            raise UserError(f"The beam must be at least 1, got {beam}.")
        max_len = self._check_len(max_len)
        b, lx = src.shape
        dev = src.device
        memory, mask, _ = self.encode(src, src_lengths)
        rep = torch.arange(b, device=dev).repeat_interleave(beam)  # (B k,): the example of each row
        memory, mask = memory.index_select(0, rep), mask.index_select(0, rep)  # (B k, L_x, D), (B k, L_x)
        caches = self._caches(max_len)

        def step(prev: Tensor, t: int) -> tuple[Tensor, Tensor]:
            return self._step(prev, t, memory, mask, caches)

        def reorder(rows: Tensor) -> None:
            for self_cache, _ in caches:
                self_cache.reorder(rows)

        return beam_decode(step, reorder, self._allowed, b, beam, lx, max_len, length_penalty,
                           self.bos_id, self.eos_id, self.pad_id, dev)  # fmt: skip

    # ------------------------------------------------------------------ interface

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A :class:`~archzoo.data.splits.PaddedBatch` of sources of lengths 3, 5, ... and targets of 2, 3, ..."""
        from archzoo.models.seq2seq import Seq2Seq

        return Seq2Seq.example_input(self, batch_size)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- registered variants


ARGS = ("src_vocab_size", "tgt_vocab_size", "pad_id", "bos_id", "eos_id", "dim", "heads", "encoder_layers",
        "decoder_layers", "ff_dim", "dropout", "activation", "norm_first", "positions", "max_len",
        "tie_embeddings", "attention")  # fmt: skip


@register_model("transformer")
@variant(Transformer, ARGS)
def transformer(**kwargs: Any) -> Transformer:
    """The encoder-decoder Transformer; small by default (d=128, 2+2 layers, 4 heads)."""
    return Transformer(**kwargs)
