r"""Recurrent encoder-decoder (sequence to sequence) with additive attention.

The encoder is a bidirectional GRU or LSTM over the embedded source, packed by
its lengths so padding never enters the recurrence; its annotations are
:math:`h_j = [\overrightarrow{h}_j; \overleftarrow{h}_j]`. The decoder is a
recurrent cell run one step at a time, started from
:math:`s_0 = \tanh(W_0 [\overrightarrow{h}_{n}; \overleftarrow{h}_1])`.

With ``attention`` (Bahdanau, Cho & Bengio 2015, https://arxiv.org/abs/1409.0473)
each step reads a context vector computed from the previous decoder state:

.. math::
    e_{tj} = v^\top \tanh(W s_{t-1} + U h_j), \qquad
    \alpha_{tj} = \frac{\exp e_{tj}}{\sum_{k \le n} \exp e_{tk}}, \qquad
    c_t = \sum_j \alpha_{tj} h_j

(padding positions :math:`j > n` get :math:`\alpha_{tj} = 0`). Without attention
the context is the encoder's fixed summary :math:`c = [\overrightarrow{h}_{n};
\overleftarrow{h}_1]` at every step (the RNNencdec baseline of Cho et al. 2014,
https://arxiv.org/abs/1406.1078). Then

.. math::
    s_t = \mathrm{RNN}([E_y[y_{t-1}]; c_t], s_{t-1}), \qquad
    p(y_t \mid y_{<t}, x) = \mathrm{softmax}(W_o [s_t; c_t; E_y[y_{t-1}]] + b_o).

Training uses teacher forcing: :math:`y_{t-1}` is the true previous token
(``<bos>`` first). With ``teacher_forcing < 1`` (scheduled sampling, Bengio et
al. 2015, https://arxiv.org/abs/1506.03099) each example at each step feeds the
model's own previous argmax instead with probability ``1 - teacher_forcing``,
drawn from the global torch RNG (which checkpoints save, so resume stays exact).

Decoding: :meth:`Seq2Seq.greedy` (batched) and :meth:`Seq2Seq.beam_search`
(batched over examples and beams), both returning token ids and the attention
weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from archzoo.errors import UserError
from archzoo.models._variant import variant
from archzoo.registry import register_model

#: A decoder state: ``h`` (GRU) or ``(h, c)`` (LSTM), each :math:`(B, H)`.
State = Tensor | tuple[Tensor, Tensor]

CELLS = ("gru", "lstm")


def beam_decode(
    step: Any,
    reorder: Any,
    allowed: Any,
    b: int,
    k: int,
    lx: int,
    max_len: int,
    length_penalty: float,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    r"""Beam search over :math:`B \cdot k` rows decoded as one batch, for any decoder.

    ``step(prev (B k,), t) -> (logits (B k, V), attention (B k, L_x))`` runs one decoder step;
    ``reorder(rows (B k,))`` makes the decoder's state (hidden state, KV caches) follow the
    surviving hypotheses; ``allowed(logits)`` masks the tokens a decoder may never emit. A
    hypothesis that emits ``<eos>`` stays in its beam with its score frozen (extended only by
    padding at log-probability 0), so it competes with the open ones; the search ends when every
    beam is finished or after ``max_len`` steps. The answer maximises
    :math:`\log p(y \mid x) / |y|^\alpha` (``length_penalty`` :math:`\alpha`).

    Returns the ids :math:`(B, T)` and the attention weights :math:`(B, T, L_x)` of the best hypotheses.
    """
    dev = device
    scores = torch.full((b, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # one live hypothesis per example at the start
    prev = torch.full((b * k,), bos_id, dtype=torch.long, device=dev)
    done = torch.zeros(b, k, dtype=torch.bool, device=dev)
    lengths = torch.zeros(b, k, device=dev)
    hist = torch.zeros(b, k, 0, dtype=torch.long, device=dev)
    attn = torch.zeros(b, k, 0, lx, device=dev)
    base = (torch.arange(b, device=dev) * k)[:, None]  # (B, 1): row of each example's first beam
    for t in range(max_len):
        logits, alpha = step(prev, t)
        logp = allowed(logits).log_softmax(-1).view(b, k, -1)  # (B, k, V)
        v = logp.shape[-1]
        frozen = torch.full_like(logp, float("-inf"))
        frozen[..., pad_id] = 0.0
        logp = torch.where(done[..., None], frozen, logp)
        cand = (scores[..., None] + logp).view(b, k * v)  # (B, k V)
        scores, flat = cand.topk(k, -1)  # (B, k)
        origin, tok = flat // v, flat % v  # (B, k)
        rows = (base + origin).view(-1)  # (B k,)
        reorder(rows)
        was_done = done.gather(1, origin)
        a = alpha.float().index_select(0, rows).view(b, k, lx).masked_fill(was_done[..., None], 0.0)
        hist = torch.cat([hist.gather(1, origin[..., None].expand(-1, -1, hist.shape[2])), tok[..., None]], 2)
        attn = torch.cat([attn[torch.arange(b, device=dev)[:, None], origin], a[:, :, None]], 2)
        lengths = lengths.gather(1, origin) + (~was_done).float()
        done = was_done | (tok == eos_id)
        prev = tok.view(-1)
        if bool(done.all()):
            break
    best = (scores / lengths.clamp(min=1.0) ** length_penalty).argmax(-1)  # (B,)
    pick = torch.arange(b, device=dev)
    return hist[pick, best], attn[pick, best]


class AdditiveAttention(nn.Module):
    r"""Bahdanau's additive attention :math:`\alpha = \mathrm{softmax}_j(v^\top \tanh(W q + U k_j))`.

    The keys' projection :math:`U k_j` depends on the source alone: :meth:`project` computes it once
    per sequence, and every decoder step adds its query's projection.

    Args:
        query_dim: width of the query (the decoder state).
        key_dim: width of the keys (the encoder annotations).
        attn_dim: width of the hidden layer of the score.

    Shapes:
        query :math:`(B, D_q)`, projected keys :math:`(B, L, A)`, keys :math:`(B, L, D_k)`,
        mask :math:`(B, L)` (true at real positions); returns the context :math:`(B, D_k)`
        and the weights :math:`(B, L)`.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.w = nn.Linear(query_dim, attn_dim, bias=False)
        self.u = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def project(self, keys: Tensor) -> Tensor:
        return self.u(keys)  # (B, L, A)

    def forward(self, query: Tensor, projected: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        scores = self.v(torch.tanh(projected + self.w(query)[:, None])).squeeze(-1)  # (B, L)
        scores = scores.masked_fill(~mask, float("-inf"))
        alpha = scores.softmax(-1)  # (B, L), zero at padding
        context = torch.bmm(alpha[:, None], keys).squeeze(1)  # (B, D_k)
        return context, alpha


class Seq2Seq(nn.Module):
    r"""A bidirectional recurrent encoder and an attentive recurrent decoder (see the module docstring).

    Args:
        src_vocab_size: source token ids, padding included.
        tgt_vocab_size: target token ids :math:`V`, padding, ``<bos>`` and ``<eos>`` included.
        pad_id: the padding id of both vocabularies (default 0).
        bos_id: the target's begin-of-sequence id (default 1).
        eos_id: the target's end-of-sequence id (default 2).
        embed_dim: embedding width of both vocabularies (default 64).
        hidden_size: decoder state width, and encoder state width per direction (default 128).
        attention: additive attention (True) or a fixed context (default True).
        cell: ``"gru"`` or ``"lstm"`` (default ``"gru"``).
        teacher_forcing: probability of feeding the true previous token in training (default 1).
        dropout: dropout on the embeddings and before the read-out (default 0).

    Shapes:
        ``forward`` takes a :class:`~archzoo.data.splits.PaddedBatch` with ``x`` :math:`(B, L_x)`,
        ``lengths`` :math:`(B,)`, targets ``y`` :math:`(B, L_y)` ending in ``<eos>`` and
        ``y_lengths``; returns logits :math:`(B, L_y, V)`.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
        embed_dim: int = 64,
        hidden_size: int = 128,
        attention: bool = True,
        cell: str = "gru",
        teacher_forcing: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise UserError(f"model.args.cell must be one of {', '.join(CELLS)}, got '{cell}'.")
        if not 0.0 <= teacher_forcing <= 1.0:
            raise UserError(f"model.args.teacher_forcing must be in [0, 1], got {teacher_forcing}.")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.cell, self.use_attention, self.teacher_forcing = cell, attention, teacher_forcing
        self.hidden_size = hidden_size
        h2 = 2 * hidden_size
        self.src_embed = nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.encoder = rnn(embed_dim, hidden_size, batch_first=True, bidirectional=True)
        self.init_state = nn.Linear(h2, hidden_size)
        self.attention = AdditiveAttention(hidden_size, h2, hidden_size) if attention else None
        step = nn.GRUCell if cell == "gru" else nn.LSTMCell
        self.decoder = step(embed_dim + h2, hidden_size)
        self.readout = nn.Linear(hidden_size + h2 + embed_dim, tgt_vocab_size)

    # ------------------------------------------------------------------ encoder

    def encode(self, src: Tensor, src_lengths: Tensor) -> dict[str, Tensor | State]:
        """Annotations :math:`(B, L_x, 2H)`, their mask, the projected keys, the summary and :math:`s_0`."""
        e = self.drop(self.src_embed(src))  # (B, L_x, E)
        packed = pack_padded_sequence(e, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, last = self.encoder(packed)
        keys, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])  # (B, L_x, 2H)
        h = last[0] if isinstance(last, tuple) else last  # (2, B, H): forward, backward
        summary = torch.cat([h[0], h[1]], -1)  # (B, 2H)
        s0 = torch.tanh(self.init_state(summary))  # (B, H)
        state: State = s0 if self.cell == "gru" else (s0, torch.zeros_like(s0))
        mask = torch.arange(src.shape[1], device=src.device) < src_lengths.to(src.device)[:, None]  # (B, L_x)
        projected = self.attention.project(keys) if self.attention is not None else keys
        return {"keys": keys, "mask": mask, "projected": projected, "summary": summary, "state": state}

    @staticmethod
    def _select(enc: dict[str, Any], index: Tensor) -> dict[str, Any]:
        """The encoder outputs of rows ``index`` (repeats allowed: beams of one example)."""
        out = {}
        for k, v in enc.items():
            out[k] = tuple(t.index_select(0, index) for t in v) if isinstance(v, tuple) else v.index_select(0, index)
        return out

    # ------------------------------------------------------------------ one decoder step

    def step(self, prev: Tensor, state: State, enc: dict[str, Any]) -> tuple[Tensor, State, Tensor | None]:
        """One decoder step from the previous tokens :math:`(B,)`: logits :math:`(B, V)`, the new state, weights."""
        e = self.drop(self.tgt_embed(prev))  # (B, E)
        s_prev = state[0] if isinstance(state, tuple) else state  # (B, H)
        if self.attention is not None:
            context, alpha = self.attention(s_prev, enc["projected"], enc["keys"], enc["mask"])  # (B, 2H), (B, L_x)
        else:
            context, alpha = enc["summary"], None
        state = self.decoder(torch.cat([e, context], -1), state)
        s = state[0] if isinstance(state, tuple) else state
        logits = self.readout(self.drop(torch.cat([s, context, e], -1)))  # (B, V)
        return logits, state, alpha

    # ------------------------------------------------------------------ training

    def forward(self, batch: Any) -> Tensor:
        """Teacher-forced logits :math:`(B, L_y, V)` of the targets ``batch.y`` given ``batch.x``."""
        logits, _ = self.forward_with_attention(batch)
        return logits

    def forward_with_attention(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced logits :math:`(B, L_y, V)` and attention weights :math:`(B, L_y, L_x)` (None without)."""
        src, y = batch.x, batch.y
        enc = self.encode(src, batch.lengths)
        b, ly = y.shape
        bos = torch.full((b,), self.bos_id, dtype=y.dtype, device=y.device)
        inputs = torch.cat([bos[:, None], y[:, :-1]], 1)  # (B, L_y): <bos>, y_1, ..., y_{L_y - 1}
        sample = self.training and self.teacher_forcing < 1.0
        state, prev = enc["state"], inputs[:, 0]
        logits, alphas = [], []
        for t in range(ly):
            if t > 0:
                prev = inputs[:, t]
                if sample:  # scheduled sampling: the model's own previous argmax, per example
                    own = logits[-1].detach().argmax(-1)
                    prev = torch.where(torch.rand(b, device=y.device) < self.teacher_forcing, prev, own)
            out, state, alpha = self.step(prev, state, enc)
            logits.append(out)
            if alpha is not None:
                alphas.append(alpha)
        attn = torch.stack(alphas, 1) if alphas else None  # (B, L_y, L_x)
        return torch.stack(logits, 1), attn  # (B, L_y, V)

    # ------------------------------------------------------------------ decoding

    def _zero_attention(self, b: int, lx: int, device: torch.device) -> Tensor:
        return torch.zeros(b, lx, device=device)

    def _allowed(self, logits: Tensor) -> Tensor:
        """Logits with ``<pad>`` and ``<bos>`` ruled out: a decoder never emits them."""
        logits = logits.float().clone()
        logits[:, [self.pad_id, self.bos_id]] = float("-inf")
        return logits

    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int = 50) -> tuple[Tensor, Tensor]:
        """Decode by the most probable token at every step, for the whole batch at once.

        Returns the ids :math:`(B, T)` (``<eos>`` included where reached, ``pad_id`` after it,
        :math:`T \\le` ``max_len``) and the attention weights :math:`(B, T, L_x)` (zeros without
        attention and after ``<eos>``).
        """
        enc = self.encode(src, src_lengths)
        b, lx = src.shape
        prev = torch.full((b,), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        state = enc["state"]
        ids, alphas = [], []
        for _ in range(max_len):
            logits, state, alpha = self.step(prev, state, enc)
            tok = self._allowed(logits).argmax(-1).masked_fill(done, self.pad_id)  # (B,)
            a = alpha if alpha is not None else self._zero_attention(b, lx, src.device)
            alphas.append(a.masked_fill(done[:, None], 0.0))
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

        All examples and their beams run as one batch of :math:`B \cdot k` rows. A hypothesis
        that emits ``<eos>`` stays in its beam with its score frozen (it may only be extended
        by padding, at log-probability 0), so it competes with the open ones; the search ends
        when every beam is finished or after ``max_len`` steps. The answer maximises
        :math:`\log p(y \mid x) / |y|^\alpha` (``length_penalty`` :math:`\alpha`; with ``beam=1``
        the search is greedy decoding).

        Returns the ids :math:`(B, T)` and the attention weights :math:`(B, T, L_x)`, as :meth:`greedy`.
        """
        if beam < 1:
            raise UserError(f"The beam must be at least 1, got {beam}.")
        b, lx = src.shape
        dev = src.device
        enc = self._select(self.encode(src, src_lengths), torch.arange(b, device=dev).repeat_interleave(beam))
        state = enc["state"]

        def step(prev: Tensor, t: int) -> tuple[Tensor, Tensor]:
            nonlocal state
            logits, state, alpha = self.step(prev, state, enc)
            return logits, alpha if alpha is not None else self._zero_attention(b * beam, lx, dev)

        def reorder(rows: Tensor) -> None:
            nonlocal state
            state = (
                tuple(s.index_select(0, rows) for s in state)
                if isinstance(state, tuple)
                else state.index_select(0, rows)
            )

        return beam_decode(step, reorder, self._allowed, b, beam, lx, max_len, length_penalty,
                           self.bos_id, self.eos_id, self.pad_id, dev)  # fmt: skip

    # ------------------------------------------------------------------ interface

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A :class:`~archzoo.data.splits.PaddedBatch` of sources of lengths 3, 5, ... and targets of 2, 3, ..."""
        from archzoo.data.splits import PaddedBatch

        g = torch.Generator().manual_seed(0)
        special = {self.pad_id, self.bos_id, self.eos_id}

        def draw(lengths: Tensor, vocab: int, eos: bool) -> Tensor:
            ids = torch.tensor([i for i in range(vocab) if i not in special])
            out = torch.full((len(lengths), int(lengths.max())), self.pad_id, dtype=torch.long)
            for i, n in enumerate(lengths.tolist()):
                out[i, :n] = ids[torch.randint(0, len(ids), (n,), generator=g)]
                if eos:
                    out[i, n - 1] = self.eos_id
            return out

        lengths = torch.arange(batch_size) * 2 + 3
        y_lengths = torch.arange(batch_size) + 2
        x = draw(lengths, self.src_vocab_size, False)
        y = draw(y_lengths, self.tgt_vocab_size, True)
        return (PaddedBatch(x=x, lengths=lengths, y=y, y_lengths=y_lengths),)


# ----------------------------------------------------------------------------- registered variants


ARGS = ("src_vocab_size", "tgt_vocab_size", "pad_id", "bos_id", "eos_id", "embed_dim", "hidden_size", "attention",
        "teacher_forcing", "dropout")  # fmt: skip


@register_model("seq2seq_gru")
@variant(Seq2Seq, ARGS)
def seq2seq_gru(**kwargs: Any) -> Seq2Seq:
    """A bidirectional-GRU encoder and a GRU decoder, with additive attention by default."""
    return Seq2Seq(cell="gru", **kwargs)


@register_model("seq2seq_lstm")
@variant(Seq2Seq, ARGS)
def seq2seq_lstm(**kwargs: Any) -> Seq2Seq:
    """A bidirectional-LSTM encoder and an LSTM decoder, with additive attention by default."""
    return Seq2Seq(cell="lstm", **kwargs)
