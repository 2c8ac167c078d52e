r"""Recurrent networks: a character/word language model and a classifier of padded sequences.

Both use PyTorch's fused recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``),
which run the whole sequence in one call.

* :class:`RNNLanguageModel` (Mikolov et al. 2010; Zaremba et al. 2014,
  https://arxiv.org/abs/1409.2329) reads tokens and predicts the next one at every
  position. It returns its final state, so a caller can feed the next block of a
  stream with the state of the previous one (truncated back-propagation through
  time) or generate one token at a time without recomputing the prefix.
* :class:`RNNClassifier` reads a batch of variable-length sequences packed with
  :func:`~torch.nn.utils.rnn.pack_padded_sequence`, so padding never enters the
  recurrence, and classifies the final hidden state.

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
from torch.nn.utils.rnn import pack_padded_sequence

from archzoo.errors import UserError
from archzoo.registry import register_model

#: The recurrent layer of each ``cell`` name.
CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

#: An ``nn.LSTM`` state is ``(h, c)``; a GRU's or RNN's is ``h``; each ``(layers * directions, B, H)``.
State = Tensor | tuple[Tensor, Tensor]


def _cell(cell: str) -> type[nn.RNNBase]:
    if cell not in CELLS:
        raise UserError(f"model.args.cell must be one of {', '.join(CELLS)}, got '{cell}'.")
    return CELLS[cell]


class RNNLanguageModel(nn.Module):
    r"""An embedding, a stack of recurrent layers and a linear read-out over the vocabulary.

    .. math::
        e_t = E[x_t], \qquad h_t = \mathrm{RNN}(e_t, h_{t-1}), \qquad
        p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(W h_t + b)

    With ``tie_weights`` the read-out shares the embedding matrix, :math:`W = E`
    (Press & Wolf 2017, https://arxiv.org/abs/1608.05859; Inan et al. 2017), which
    needs ``hidden_size == embed_dim``.

    Args:
        vocab_size: number of token ids :math:`V`.
        embed_dim: embedding width (default 64).
        hidden_size: recurrent state width (default 128).
        num_layers: stacked recurrent layers (default 1).
        dropout: dropout on the embeddings, between layers and before the read-out (default 0).
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (tanh; default ``"lstm"``).
        tie_weights: share the embedding and read-out weights (default False).

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
    ) -> None:
        super().__init__()
        if tie_weights and hidden_size != embed_dim:
            raise UserError(
                f"model.args.tie_weights needs hidden_size == embed_dim, got {hidden_size} and {embed_dim}."
            )
        self.vocab_size = vocab_size
        self.cell = cell
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.drop = nn.Dropout(dropout)
        # nn.RNNBase warns when it is given dropout with a single layer (it applies between layers only).
        inner = dropout if num_layers > 1 else 0.0
        self.rnn = _cell(cell)(embed_dim, hidden_size, num_layers, batch_first=True, dropout=inner)
        self.head = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.head.weight = self.embed.weight

    def forward_features(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """The top layer's hidden states :math:`(B, T, H)` and the new state."""
        e = self.drop(self.embed(x))  # (B, T, E)
        out, state = self.rnn(e, state)  # (B, T, H)
        return out, state

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        out, state = self.forward_features(x, state)
        return self.head(self.drop(out)), state  # (B, T, V)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """Token ids :math:`(B, 8)`, what :meth:`forward` takes."""
        g = torch.Generator().manual_seed(0)
        return (torch.randint(0, self.vocab_size, (batch_size, 8), generator=g),)


class RNNClassifier(nn.Module):
    r"""Classify variable-length sequences by the recurrent layer's last state.

    The embedded batch is packed by its lengths, so each sequence's last state is
    taken after its own last token, whatever its padding:

    .. math::
        h = \mathrm{RNN}(E[x_1], \dots, E[x_{n}]), \qquad
        \text{logits} = W [\overrightarrow{h}_{n} \,\|\, \overleftarrow{h}_{1}] + b

    (the backward half only when ``bidirectional``).

    Args:
        vocab_size: number of token ids, padding included.
        num_classes: number of classes :math:`C`.
        pad_id: the padding id, whose embedding stays zero (default 0).
        embed_dim: embedding width (default 32).
        hidden_size: recurrent state width per direction (default 64).
        cell: ``"gru"``, ``"lstm"`` or ``"rnn"`` (default ``"gru"``).
        bidirectional: also read each sequence backwards (default False).
        num_layers: stacked recurrent layers; the top one is read out (default 1).

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
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = _cell(cell)(embed_dim, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden_size * self.directions, num_classes)

    def forward_features(self, batch: Any) -> Tensor:
        """The last state of the top layer, both directions concatenated: :math:`(B, \\text{dirs} \\cdot H)`."""
        x, lengths = batch.x, batch.lengths
        e = self.embed(x)  # (B, L, E)
        # pack_padded_sequence wants the lengths on the CPU (a host copy when x is on a GPU).
        packed = pack_padded_sequence(e, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        if isinstance(h, tuple):  # LSTM: (h, c)
            h = h[0]
        # h is in the batch's own order (the packing's sort is undone): (layers * dirs, B, H)
        b = h.shape[1]
        h = h.view(self.num_layers, self.directions, b, -1)[-1]  # (dirs, B, H), the top layer
        return h.transpose(0, 1).reshape(b, -1)  # (B, dirs * H)

    def forward(self, batch: Any) -> Tensor:
        return self.head(self.forward_features(batch))

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
def lstm_lm(
    vocab_size: int,
    embed_dim: int = 64,
    hidden_size: int = 128,
    num_layers: int = 1,
    dropout: float = 0.0,
    cell: str = "lstm",
    tie_weights: bool = False,
) -> RNNLanguageModel:
    """A recurrent language model (an LSTM by default; ``cell`` picks a GRU or a tanh RNN)."""
    return RNNLanguageModel(vocab_size, embed_dim, hidden_size, num_layers, dropout, cell, tie_weights)


@register_model("rnn_classifier")
def rnn_classifier(
    vocab_size: int,
    num_classes: int,
    pad_id: int = 0,
    embed_dim: int = 32,
    hidden_size: int = 64,
    cell: str = "gru",
    bidirectional: bool = False,
    num_layers: int = 1,
) -> RNNClassifier:
    """A GRU (by default) over packed padded sequences, classified by its last state."""
    return RNNClassifier(vocab_size, num_classes, pad_id, embed_dim, hidden_size, cell, bidirectional, num_layers)
