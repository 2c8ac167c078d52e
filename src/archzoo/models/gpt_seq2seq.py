r"""A decoder-only Transformer for sequence-to-sequence tasks: a GPT that reads the source, then writes the target.

minGPT's sorting demo (Karpathy 2020) trains a GPT on one sequence holding the problem and its
answer, with the loss on the answer only. :class:`GPTSeq2Seq` does the same for the
``seq2seq`` task's padded batches: each example becomes

.. math::
    [\,\underbrace{\texttt{pad} \dots \texttt{pad}\ x_1 \dots x_n}_{W \text{ positions}},\ \texttt{<bos>},\ y_1, \dots, y_{m-1}\,]

with the source right-aligned in a window of fixed width :math:`W` (the data's longest source),
so ``<bos>`` always sits at position :math:`W` and training, evaluation and decoding see the same
positions whatever the batch. The model is a :class:`~archzoo.models.gpt.GPT` over one joint
vocabulary (target ids, then source ids shifted by the target vocabulary size); its causal
self-attention is masked so that no real token attends a padding slot (a padding slot attends
itself alone, so no softmax row is empty). The output at position :math:`W + j` is the target
distribution of :math:`y_{j+1}`, read from the target part of the joint vocabulary; the loss is
the task's cross-entropy over those positions, i.e. over the answer only.

Decoding is greedy with a KV cache per layer (the source and ``<bos>`` are read once, then one
token per step); beam search is refused (``task.args.beam`` must be 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.attention import KVCache
from archzoo.layers.checkpoint import GradCheckpointing
from archzoo.models._variant import variant
from archzoo.models.gpt import GPT
from archzoo.registry import register_model


class GPTSeq2Seq(GradCheckpointing, nn.Module):
    """A :class:`~archzoo.models.gpt.GPT` reading a right-aligned source then writing the target (module docstring).

    Args:
        src_vocab_size: source token ids, padding included.
        tgt_vocab_size: target token ids :math:`V`, padding, ``<bos>`` and ``<eos>`` included.
        max_src_len: the source window :math:`W`, the data's longest source (default 32; the engine passes the data's).
        max_tgt_len: the longest target, ``<eos>`` included.
        pad_id: the padding id of both vocabularies (default 0).
        bos_id: the target's begin-of-sequence id (default 1).
        eos_id: the target's end-of-sequence id (default 2).
        n_layer: Transformer blocks (default 4).
        n_head: attention heads (default 4).
        n_embd: model width (default 128).
        dropout: dropout (default 0).
        extra_len: positions past :math:`W + 1 +` ``max_tgt_len`` that decoding may use (default 10).

    Shapes:
        ``forward`` takes a :class:`~archzoo.data.splits.PaddedBatch` with ``x`` :math:`(B, L_x)`,
        ``lengths``, ``y`` :math:`(B, L_y)` and returns logits :math:`(B, L_y, V)`.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        max_src_len: int = 32,
        max_tgt_len: int = 33,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.0,
        extra_len: int = 10,
    ) -> None:
        super().__init__()
        if max_src_len < 1 or max_tgt_len < 1:
            raise UserError(f"max_src_len and max_tgt_len must be at least 1, got {max_src_len} and {max_tgt_len}.")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.window = max_src_len
        block = max_src_len + 1 + max_tgt_len + extra_len
        self.gpt = GPT(src_vocab_size + tgt_vocab_size, block, n_layer, n_head, n_embd, dropout)
        self.attention = None  # no encoder-decoder attention map to draw

    # ------------------------------------------------------------------ layout

    def _source(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Joint ids :math:`(B, W)` of the right-aligned sources and the mask of their real slots."""
        b, lx = src.shape
        w = self.window
        if lx > w:
            raise UserError(f"A source of {lx} tokens is longer than this model's window of {w} (the data's longest).")
        slots = torch.arange(w, device=src.device)  # (W,)
        real = slots[None, :] >= (w - lengths.to(src.device))[:, None]  # (B, W)
        index = (slots[None, :] - (w - lengths.to(src.device))[:, None]).clamp(min=0, max=max(lx - 1, 0))
        ids = src.gather(1, index) + self.tgt_vocab_size  # (B, W): source ids after the target vocabulary
        return ids.masked_fill(~real, self.pad_id), real

    @staticmethod
    def _mask(real: Tensor, t: int, s: int) -> Tensor:
        """Boolean :math:`(B, 1, T, S)`: causal, real keys only, and each padding slot sees itself."""
        i = torch.arange(t, device=real.device)[:, None] + (s - t)  # the queries' positions
        j = torch.arange(s, device=real.device)[None, :]
        causal = j <= i  # (T, S)
        keys = real[:, None, None, :s]  # (B, 1, 1, S)
        return (causal & keys) | (j == i)

    def _run(self, ids: Tensor, real: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        g = self.gpt
        offset = caches[0].length if caches else 0
        t = ids.shape[1]
        if offset + t > g.block_size:
            raise UserError(f"Decoding reached {offset + t} positions, past this model's {g.block_size}.")
        h = g.wte(ids)  # (B, T, D)
        if g.pos is not None:
            h = g.pos(h, offset)
        h = g.drop(h)
        mask = self._mask(real, t, offset + t)
        for i, block in enumerate(g.blocks):
            cache = (caches[i], None) if caches else None
            h, _ = block(h, attn_mask=mask, cache=cache)
        return g.head(g.ln_f(h))[..., : self.tgt_vocab_size]  # (B, T, V): the target part of the vocabulary

    # ------------------------------------------------------------------ training

    def forward(self, batch: Any) -> Tensor:
        src, ids_real = self._source(batch.x, batch.lengths)
        y = batch.y
        b = y.shape[0]
        prev = torch.cat([y.new_full((b, 1), self.bos_id), y[:, :-1]], 1)  # (B, L_y): <bos>, y_1 .. y_{L-1}
        ids = torch.cat([src, prev], 1)  # (B, W + L_y)
        real = torch.cat([ids_real, torch.ones_like(prev, dtype=torch.bool)], 1)
        return self._run(ids, real)[:, self.window :]  # (B, L_y, V)

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int = 50) -> tuple[Tensor, Tensor]:
        """Greedy decoding with KV caches: ids :math:`(B, T)` and an all-zero attention :math:`(B, T, L_x)`."""
        ids, real = self._source(src, src_lengths)
        b = src.shape[0]
        max_len = min(max_len, self.gpt.block_size - self.window)
        caches = [KVCache(self.gpt.block_size) for _ in self.gpt.blocks]
        prev = src.new_full((b, 1), self.bos_id)
        seq = torch.cat([ids, prev], 1)
        real = torch.cat([real, torch.ones_like(prev, dtype=torch.bool)], 1)
        logits = self._run(seq, real, caches)[:, -1]  # (B, V)
        out, done = [], torch.zeros(b, dtype=torch.bool, device=src.device)
        for step in range(max_len):
            tok = logits.argmax(-1)  # (B,)
            tok = tok.masked_fill(done, self.pad_id)
            out.append(tok)
            done = done | (tok == self.eos_id)
            if step + 1 == max_len or bool(done.all()):
                break
            real = torch.cat([real, torch.ones(b, 1, dtype=torch.bool, device=src.device)], 1)
            logits = self._run(tok[:, None], real, caches)[:, -1]
        pred = torch.stack(out, 1)  # (B, T)
        return pred, pred.new_zeros(b, pred.shape[1], src.shape[1], dtype=torch.float)

    def beam_search(self, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        raise UserError("gpt_seq2seq decodes greedily only; set task.args.beam=1.")

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A :class:`~archzoo.data.splits.PaddedBatch` of sources of lengths 1, 2, ... and targets of 2, 3, ..."""
        from archzoo.data.splits import PaddedBatch

        g = torch.Generator().manual_seed(0)
        lengths = (torch.arange(batch_size) % self.window) + 1
        y_lengths = torch.arange(batch_size) + 2
        x = torch.randint(3, self.src_vocab_size, (batch_size, int(lengths.max())), generator=g)
        x = x.masked_fill(torch.arange(x.shape[1])[None] >= lengths[:, None], self.pad_id)
        y = torch.randint(3, self.tgt_vocab_size, (batch_size, int(y_lengths.max())), generator=g)
        y = y.masked_fill(torch.arange(y.shape[1])[None] >= y_lengths[:, None], self.pad_id)
        y[torch.arange(batch_size), y_lengths - 1] = self.eos_id
        return (PaddedBatch(x=x, lengths=lengths, y=y, y_lengths=y_lengths),)


ARGS = ("src_vocab_size", "tgt_vocab_size", "max_src_len", "max_tgt_len", "pad_id", "bos_id", "eos_id", "n_layer",
        "n_head", "n_embd", "dropout", "extra_len")  # fmt: skip


@register_model("gpt_seq2seq")
@variant(GPTSeq2Seq, ARGS)
def gpt_seq2seq(**kwargs: Any) -> GPTSeq2Seq:
    return GPTSeq2Seq(**kwargs)
