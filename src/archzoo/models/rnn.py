r"""Recurrent networks: a character/word language model and a classifier of padded sequences.

Both run PyTorch's fused recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``), which
run the whole sequence in one call, by default (``impl="fused"``), or the cells written out
from their equations in :mod:`archzoo.layers.recurrent` (``impl="cells"``), which hold the
same parameters under the same names: a checkpoint of one loads into the other.

* :class:`RNNLanguageModel` (Mikolov et al. 2010; Zaremba et al. 2014,
  https://arxiv.org/abs/1409.2329) reads tokens and predicts the next one at every
  position. It returns its final state, so a caller can feed the next block of a
  stream with the state of the previous one (truncated back-propagation through
  time) or generate one token at a time without recomputing the prefix.
* :class:`RNNClassifier` reads a batch of variable-length sequences packed with
  :func:`~torch.nn.utils.rnn.pack_padded_sequence` (fused) or with each sequence's length
  (cells), so padding never enters the recurrence, and classifies a pooling of it: the
  last valid state, the mean over valid steps, or an attention-weighted sum.

LSTM step (Hochreiter & Schmidhuber 1997):

.. math::
    i, f, g, o = \sigma(W_i x_t + U_i h_{t-1}), \sigma(\cdot), \tanh(\cdot), \sigma(\cdot) \\
    c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

GRU step (Cho et al. 2014, https://arxiv.org/abs/1406.1078):

.. math::
    r, z = \sigma(W_r x_t + U_r h_{t-1}), \sigma(W_z x_t + U_z h_{t-1}) \\
    n = \tanh(W_n x_t + r \odot U_n h_{t-1}), \qquad h_t = (1 - z) \odot n + z \odot h_{t-1}
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from archzoo.errors import UserError
from archzoo.layers.adaptive_softmax import AdaptiveSoftmax
from archzoo.layers.recurrent import BETWEEN, Recurrent, Stacked
from archzoo.models._variant import variant
from archzoo.registry import register_model

#: The recurrent layer of each ``cell`` name.
CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

#: An ``nn.LSTM`` state is ``(h, c)``; a GRU's or RNN's is ``h``; each ``(layers * directions, B, H)``.
State = Tensor | tuple[Tensor, Tensor]


#: The implementations ``impl`` picks between.
IMPLS = ("fused", "cells")

#: The read-outs of :class:`RNNLanguageModel`.
HEADS = ("softmax", "adaptive")

#: How :class:`RNNClassifier` pools the steps of a sequence.
POOLS = ("last", "mean", "attention")


def padded_recurrence(rnn: nn.RNNBase, e: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """A fused recurrent layer over a padded batch without packing: the same outputs as packed.

    Each layer and direction runs as its own one-layer call on the layer's own weights. The
    forward direction reads the padded rows as they are (padding after a sequence's end cannot
    reach its valid steps); the backward direction reads each sequence reversed within its own
    length, so it starts at that sequence's last step, and its outputs are put back in order.
    This is the form ``archzoo export`` traces: packing sorts by length with data-dependent shapes.

    Shapes:
        ``e`` :math:`(B, L, E)`, ``lengths`` :math:`(B,)`; returns the top layer's outputs
        :math:`(B, L, D H)`, zero past each end, and the last valid states :math:`(L_{layers} D, B, H)`.
    """
    b, seq = e.shape[0], e.shape[1]
    t = torch.arange(seq, device=e.device)[None, :]  # (1, L)
    lengths = lengths.to(e.device)[:, None]  # (B, 1)
    valid = (t < lengths)[..., None].to(e.dtype)  # (B, L, 1)
    rev = torch.where(t < lengths, lengths - 1 - t, t)  # (B, L): each sequence reversed within its length
    directions = 2 if rnn.bidirectional else 1
    h_size = rnn.hidden_size
    x, finals = e, []
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(directions):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            params = [getattr(rnn, f"weight_ih{sfx}"), getattr(rnn, f"weight_hh{sfx}")]
            if rnn.bias:
                params += [getattr(rnn, f"bias_ih{sfx}"), getattr(rnn, f"bias_hh{sfx}")]
            # Indices expanded from rev's own (B, L), so the trace keeps L symbolic (not the GRU output's).
            inp = x.gather(1, rev[..., None].expand(-1, -1, x.shape[-1])) if d else x
            h0 = x.new_zeros(1, b, h_size)
            if rnn.mode == "LSTM":
                out = torch.lstm(inp, (h0, h0), params, rnn.bias, 1, 0.0, False, False, True)[0]
            else:
                fn = {"GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}[rnn.mode]
                out = fn(inp, h0, params, rnn.bias, 1, 0.0, False, False, True)[0]  # (B, L, H)
            # Backward: the reversed run's last valid step is the sequence's first position.
            last = out.gather(1, (lengths - 1)[..., None].expand(b, 1, h_size))[:, 0]  # (B, H)
            if d:
                out = out.gather(1, rev[..., None].expand(-1, -1, h_size))
            outs.append(out * valid)
            finals.append(last)
        x = torch.cat(outs, -1) if directions > 1 else outs[0]  # (B, L, D H); eval mode: no dropout between
    return x, torch.stack(finals)  # (B, L, D H), (layers * D, B, H)


def _cell(cell: str) -> type[nn.RNNBase]:
    if cell not in CELLS:
        raise UserError(f"model.args.cell must be one of {', '.join(CELLS)}, got '{cell}'.")
    return CELLS[cell]


def recurrent_layer(
    cell: str,
    impl: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    between: str = "none",
) -> nn.Module:
    """``nn.LSTM``/``nn.GRU``/``nn.RNN`` (``impl="fused"``) or :class:`Recurrent` (``"cells"``), batch first.

    Both hold the same parameters under the same names. Dropout acts between layers only;
    one layer takes none (``nn.RNNBase`` warns when given it). With ``between`` a
    nonlinearity name (``"tanh"``, ``"relu"``, ``"gelu"``), the layers are stacked one by one
    as :class:`~archzoo.layers.recurrent.Stacked`, with an affine map and that
    nonlinearity between them.
    """
    layer_cls = _cell(cell)
    if impl not in IMPLS:
        raise UserError(f"model.args.impl must be one of {', '.join(IMPLS)}, got '{impl}'.")
    if between != "none":
        if between not in BETWEEN:
            raise UserError(f"model.args.between must be 'none' or one of {', '.join(BETWEEN)}, got '{between}'.")
        if num_layers < 2:
            raise UserError(f"model.args.between='{between}' needs model.args.num_layers >= 2, got {num_layers}.")
        directions = 2 if bidirectional else 1
        layers = [
            recurrent_layer(
                cell, impl, input_size if i == 0 else hidden_size * directions, hidden_size, 1, 0.0, bidirectional
            )
            for i in range(num_layers)
        ]
        return Stacked(layers, between, dropout)
    inner = dropout if num_layers > 1 else 0.0
    if impl == "cells":
        return Recurrent(cell, input_size, hidden_size, num_layers, dropout=inner, bidirectional=bidirectional)
    return layer_cls(input_size, hidden_size, num_layers, batch_first=True, dropout=inner, bidirectional=bidirectional)


class RNNLanguageModel(nn.Module):
    r"""An embedding, a stack of recurrent layers and a linear read-out over the vocabulary.

    .. math::
        e_t = E[x_t], \qquad h_t = \mathrm{RNN}(e_t, h_{t-1}), \qquad
        p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(W h_t + b)

    With ``tie_weights`` the read-out shares the embedding matrix, :math:`W = E`
    (Press & Wolf 2017, https://arxiv.org/abs/1608.05859; Inan et al. 2017), which
    needs ``hidden_size == embed_dim``; with the adaptive head it shares the shortlist
    rows, the first ``cutoffs[0]`` rows of :math:`E` (the tail clusters keep their own).

    Args:
        vocab_size: number of token ids :math:`V`.
        embed_dim: embedding width (default 64).
        hidden_size: recurrent state width (default 128).
        num_layers: stacked recurrent layers (default 1).
        dropout: dropout on the embeddings, between layers and before the read-out (default 0).
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (tanh; default ``"lstm"``).
        tie_weights: share the embedding and read-out weights (default False).
        impl: ``"fused"`` (torch's layers) or ``"cells"`` (:class:`~archzoo.layers.recurrent.Recurrent`;
            default ``"fused"``).
        bidirectional: refused: the backward direction would read the tokens the model
            predicts (default False).
        between: ``"none"`` (default: torch's stack) or ``"tanh"``, ``"relu"``, ``"gelu"``: an
            affine map and that nonlinearity between the recurrent layers
            (:class:`~archzoo.layers.recurrent.Stacked`; needs ``num_layers >= 2``).
        init_range: if above 0, the embedding and read-out weights start uniform in
            :math:`[-r, r]` and the read-out bias at zero, as Zaremba et al. 2014 and
            pytorch/examples' word language model start them (default 0: torch's own
            initialisation, :math:`\mathcal{N}(0, 1)` for the embedding).
        head: ``"softmax"`` (default: a linear read-out over the whole vocabulary) or
            ``"adaptive"``: Grave et al. 2017's adaptive softmax
            (:class:`~archzoo.layers.adaptive_softmax.AdaptiveSoftmax`, written out, equal to
            :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`; https://arxiv.org/abs/1609.04309).
            Token ids are taken as sorted by frequency (the word tokenizer numbers them so); the
            ``cutoffs`` split them into a head of frequent words, scored by a full softmax
            together with one entry per tail cluster, and tail clusters of rarer words, each
            scored through a projection ``div_value`` times narrower than the last. It is an
            exact distribution over the vocabulary (perplexity stays exact), whose training cost
            falls with the share of tokens that stay in the head.
        cutoffs: the adaptive head's cluster boundaries, increasing and below the vocabulary size
            (default ``[2000, 6000]``).
        div_value: how much narrower each tail cluster's projection is (default 4).

    Shapes:
        input ``x`` :math:`(B, T)` token ids and an optional state (as returned);
        output logits :math:`(B, T, V)` and the new state, each tensor
        :math:`(\text{layers}, B, \text{hidden})`.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        cell: str = "lstm",
        tie_weights: bool = False,
        impl: str = "fused",
        bidirectional: bool = False,
        between: str = "none",
        init_range: float = 0.0,
        head: str = "softmax",
        cutoffs: tuple[int, ...] | list[int] = (2000, 6000),
        div_value: float = 4.0,
    ) -> None:
        super().__init__()
        if init_range < 0:
            raise UserError(f"model.args.init_range must be 0 or more, got {init_range}.")
        if head not in HEADS:
            raise UserError(f"model.args.head must be one of {', '.join(HEADS)}, got '{head}'.")
        if bidirectional:
            raise UserError(
                "A language model cannot be bidirectional: the backward direction would read the tokens it predicts."
            )
        if tie_weights and hidden_size != embed_dim:
            raise UserError(
                f"model.args.tie_weights needs hidden_size == embed_dim, got {hidden_size} and {embed_dim}."
            )
        self.vocab_size = vocab_size
        self.cell = cell
        self.impl = impl
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.rnn = recurrent_layer(cell, impl, embed_dim, hidden_size, num_layers, dropout, between=between)
        self.adaptive = head == "adaptive"
        self.head: nn.Module
        if self.adaptive:
            self.head = AdaptiveSoftmax(
                hidden_size, vocab_size, list(cutoffs), div_value=div_value, tie_shortlist=tie_weights
            )
        else:
            self.head = nn.Linear(hidden_size, vocab_size)
        if init_range > 0:
            nn.init.uniform_(self.embed.weight, -init_range, init_range)
            if not self.adaptive:
                nn.init.uniform_(self.head.weight, -init_range, init_range)
                nn.init.zeros_(self.head.bias)
        self.tie_weights = tie_weights
        if tie_weights and not self.adaptive:
            self.head.weight = self.embed.weight

    def forward_features(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """The top layer's hidden states :math:`(B, T, H)` and the new state."""
        e = self.drop(self.embed(x))  # (B, T, E)
        out, state = self.rnn(e, state)  # (B, T, H)
        return out, state

    def forward(self, x: Tensor, state: State | None = None, targets: Tensor | None = None) -> tuple[Tensor, State]:
        """Logits :math:`(B, T, V)` (log-probabilities with the adaptive head) and the new state.

        With ``targets`` :math:`(B, T)`, the adaptive head returns each target's negative
        log-likelihood :math:`(B, T)` instead, without scoring the clusters no target falls in
        (:attr:`scores_targets`); the softmax head ignores ``targets``.
        """
        out, state = self.forward_features(x, state)
        out = self.drop(out)
        if not self.adaptive:
            return self.head(out), state  # (B, T, V)
        b, t, h = out.shape
        flat = out.reshape(b * t, h)  # (B*T, H)
        # tied: the head's shortlist rows are the embeddings of the most frequent words
        shortlist = self.embed.weight[: self.head.shortlist] if self.tie_weights else None
        if targets is not None:
            return self.head.nll(flat, targets.reshape(-1), shortlist).view(b, t), state  # (B, T)
        return self.head.log_prob(flat, shortlist).view(b, t, -1), state  # (B, T, V)

    @property
    def scores_targets(self) -> bool:
        """True when :meth:`forward` given ``targets`` returns their NLL (the adaptive head)."""
        return self.adaptive

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """Token ids :math:`(B, 8)`, what :meth:`forward` takes."""
        g = torch.Generator().manual_seed(0)
        return (torch.randint(0, self.vocab_size, (batch_size, 8), generator=g),)


class RNNClassifier(nn.Module):
    r"""Classify variable-length sequences by a pooling of the recurrent layer's states.

    Padding never enters the recurrence: the fused layers read the batch packed by its
    lengths, the written-out cells (``impl="cells"``) read it padded and keep each
    sequence's state fixed after its own last step (the backward direction starts at its
    own last step). With :math:`o_1, \dots, o_n` the top layer's outputs of a sequence of
    length :math:`n` (both directions concatenated when ``bidirectional``), ``pool`` picks:

    .. math::
        \text{last}: \; [\overrightarrow{h}_{n} \,\|\, \overleftarrow{h}_{1}], \qquad
        \text{mean}: \; \frac{1}{n} \sum_{t \le n} o_t, \qquad
        \text{attention}: \; \sum_{t \le n} \alpha_t o_t, \;
        \alpha = \mathrm{softmax}_{t \le n}\big(q^\top \tanh(W o_t + b)\big)

    then :math:`\text{logits} = W_c\, \mathrm{dropout}(\text{pooled}) + b_c`. Attention
    pooling is the word attention of Yang et al., `"Hierarchical Attention Networks for
    Document Classification" <https://aclanthology.org/N16-1174>`_ (NAACL 2016): a learned
    query :math:`q` scores each step, the softmax runs over the valid steps only, and the
    weights of the last forward are kept in ``model.last_attention`` :math:`(B, L)` (zero on
    padding) so that a plot can show them.

    Args:
        vocab_size: number of token ids, padding included.
        num_classes: number of classes :math:`C`.
        pad_id: the padding id, whose embedding stays zero (default 0).
        embed_dim: embedding width (default 32).
        hidden_size: recurrent state width per direction (default 64).
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"`` (default ``"gru"``).
        bidirectional: also read each sequence backwards (default False).
        num_layers: stacked recurrent layers; the top one is read out (default 1).
        dropout: dropout between recurrent layers and before the read-out (default 0).
        pool: ``"last"``, ``"mean"`` or ``"attention"`` (default ``"last"``).
        impl: ``"fused"`` (torch's layers over a packed batch) or ``"cells"``
            (:class:`~archzoo.layers.recurrent.Recurrent` over the padded batch; default ``"fused"``).
        between: ``"none"`` (default) or ``"tanh"``, ``"relu"``, ``"gelu"``: an affine map and that
            nonlinearity between the recurrent layers (needs ``num_layers >= 2``).

    Shapes:
        input a :class:`~archzoo.data.splits.PaddedBatch` with ``x`` :math:`(B, L)` and
        ``lengths`` :math:`(B,)`; output logits :math:`(B, C)`.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        pad_id: int = 0,
        embed_dim: int = 32,
        hidden_size: int = 64,
        cell: str = "gru",
        bidirectional: bool = False,
        num_layers: int = 1,
        dropout: float = 0.0,
        pool: str = "last",
        impl: str = "fused",
        between: str = "none",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise UserError(f"model.args.pool must be one of {', '.join(POOLS)}, got '{pool}'.")
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.pool = pool
        self.impl = impl
        width = hidden_size * self.directions
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = recurrent_layer(cell, impl, embed_dim, hidden_size, num_layers, dropout, bidirectional, between)
        if pool == "attention":
            self.attn_proj = nn.Linear(width, width)
            self.attn_query = nn.Parameter(torch.randn(width) / width**0.5)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)
        #: The attention weights :math:`(B, L)` of the last forward (``pool="attention"``), detached.
        self.last_attention: Tensor | None = None

    def _run(self, e: Tensor, lengths: Tensor) -> tuple[Tensor | None, Tensor]:
        """The top layer's outputs :math:`(B, L, D H)` (zero past each end; None when ``pool="last"``
        and the fused layer need not unpack them) and the last valid states :math:`(L_{layers} D, B, H)`."""
        if self.impl == "cells":
            out, h = self.rnn(e, lengths=lengths)
        else:
            # pack_padded_sequence wants the lengths on the CPU (a host copy when x is on a GPU).
            packed = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out_p, h = self.rnn(packed)
            # Both come back in the batch's own order (the packing's sort is undone).
            out = None if self.pool == "last" else pad_packed_sequence(out_p, True, total_length=e.shape[1])[0]
        if isinstance(h, tuple):  # LSTM: (h, c)
            h = h[0]
        return out, h

    def forward_features(self, batch: Any) -> Tensor:
        """The pooled sequence :math:`(B, \\text{dirs} \\cdot H)`."""
        x, lengths = batch.x, batch.lengths
        e = self.embed(x)  # (B, L, E)
        out, h = self._run(e, lengths)
        return self._pooled(x, lengths, out, h)

    @property
    def export_refusal(self) -> str | None:
        """Why ``archzoo export`` cannot trace this classifier (None: :meth:`forward_padded` can be)."""
        if not isinstance(self.rnn, nn.RNNBase):
            return (
                "its recurrence is written out step by step (impl=cells, or layers stacked with 'between'), "
                "a Python loop over the time steps that a trace fixes to one length"
            )
        return None

    def forward_padded(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The logits of :meth:`forward` from the padded ids :math:`(B, L)` and lengths :math:`(B,)`,
        without packing (:func:`padded_recurrence`): the form that ``archzoo export`` traces."""
        if not isinstance(self.rnn, nn.RNNBase):
            raise UserError(
                f"forward_padded needs a fused recurrent layer, and this classifier's is {type(self.rnn).__name__}."
            )
        out, h = padded_recurrence(self.rnn, self.embed(x), lengths)
        return self.head(self.drop(self._pooled(x, lengths, out, h)))

    def _pooled(self, x: Tensor, lengths: Tensor, out: Tensor | None, h: Tensor) -> Tensor:
        """The pooling of :meth:`forward_features` over the outputs ``out`` and last states ``h``."""
        b = x.shape[0]
        if self.pool == "last":
            h = h.view(self.num_layers, self.directions, b, -1)[-1]  # (dirs, B, H), the top layer
            return h.transpose(0, 1).reshape(b, -1)  # (B, dirs * H)
        assert out is not None
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]  # (B, L)
        if self.pool == "mean":
            return out.sum(1) / lengths.to(out.device, out.dtype)[:, None]  # padding is zero: (B, D H)
        scores = torch.tanh(self.attn_proj(out)) @ self.attn_query  # (B, L): q^T tanh(W o_t + b)
        alpha = scores.masked_fill(~valid, float("-inf")).softmax(dim=1)  # (B, L), zero on padding
        self.last_attention = alpha.detach()
        return (alpha[:, :, None] * out).sum(1)  # (B, D H)

    def forward(self, batch: Any) -> Tensor:
        return self.head(self.drop(self.forward_features(batch)))

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A :class:`~archzoo.data.splits.PaddedBatch` of ``batch_size`` sequences of lengths 3, 5, 7, ..."""
        from archzoo.data.splits import PaddedBatch

        g = torch.Generator().manual_seed(0)
        lengths = torch.arange(batch_size) * 2 + 3
        x = torch.full((batch_size, int(lengths.max())), self.pad_id, dtype=torch.long)
        ids = [i for i in range(self.vocab_size) if i != self.pad_id]
        for i, n in enumerate(lengths.tolist()):
            x[i, :n] = torch.tensor(ids)[torch.randint(0, len(ids), (n,), generator=g)]
        y = torch.zeros(batch_size, dtype=torch.long)
        return (PaddedBatch(x=x, lengths=lengths, y=y),)


# ----------------------------------------------------------------------------- registered variants


@register_model("lstm_lm")
@variant(
    RNNLanguageModel,
    (
        "vocab_size",
        "embed_dim",
        "hidden_size",
        "num_layers",
        "dropout",
        "cell",
        "tie_weights",
        "impl",
        "bidirectional",
        "between",
        "init_range",
        "head",
        "cutoffs",
        "div_value",
    ),  # fmt: skip
)
def lstm_lm(**kwargs: Any) -> RNNLanguageModel:
    """A recurrent language model (an LSTM by default; ``cell`` picks a GRU or a tanh RNN; ``impl`` fused or cells)."""
    return RNNLanguageModel(**kwargs)


@register_model("rnn_classifier")
@variant(
    RNNClassifier,
    ("vocab_size", "num_classes", "pad_id", "embed_dim", "hidden_size", "cell", "bidirectional", "num_layers",
     "dropout", "pool", "impl", "between"),
)  # fmt: skip
def rnn_classifier(**kwargs: Any) -> RNNClassifier:
    """A GRU (by default) over padded sequences, classified by their last valid state (or their mean, or attention)."""
    return RNNClassifier(**kwargs)
