"""Recurrent models: shapes, carried state, tied weights, and padding that does not leak into the classifier."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.splits import PaddedBatch
from archzoo.errors import UserError
from archzoo.models.rnn import RNNClassifier, RNNLanguageModel, lstm_lm, rnn_classifier


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_lm_shapes_and_state(cell: str) -> None:
    torch.manual_seed(0)
    m = lstm_lm(vocab_size=13, embed_dim=8, hidden_size=12, num_layers=2, cell=cell)
    (x,) = m.example_input(3)
    logits, state = m(x)
    assert logits.shape == (3, x.shape[1], 13)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (2, 3, 12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_lm_two_halves_with_carried_state_equal_one_pass(cell: str) -> None:
    torch.manual_seed(0)
    m = lstm_lm(vocab_size=17, embed_dim=8, hidden_size=10, num_layers=2, cell=cell, dropout=0.3).eval()
    x = torch.randint(0, 17, (4, 20))
    whole, s_whole = m(x)
    a, s = m(x[:, :9])
    b, s = m(x[:, 9:], s)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, atol=1e-6, rtol=0)
    for u, v in zip(s if cell == "lstm" else (s,), s_whole if cell == "lstm" else (s_whole,), strict=True):
        torch.testing.assert_close(u, v, atol=1e-6, rtol=0)


def test_lm_tied_weights_share_one_matrix() -> None:
    m = lstm_lm(vocab_size=9, embed_dim=16, hidden_size=16, tie_weights=True)
    assert m.head.weight is m.embed.weight
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in set(m.parameters()))
    with pytest.raises(UserError, match="tie_weights"):
        lstm_lm(vocab_size=9, embed_dim=8, hidden_size=16, tie_weights=True)


def test_unknown_cell_is_a_user_error() -> None:
    with pytest.raises(UserError, match="cell"):
        RNNLanguageModel(5, cell="transformer")


def _padded(seq: list[int], width: int, pad_id: int = 0) -> tuple[torch.Tensor, int]:
    return torch.tensor(seq + [pad_id] * (width - len(seq))), len(seq)


@pytest.mark.parametrize(("cell", "bidirectional"), [("gru", False), ("lstm", True), ("rnn", False)])
def test_classifier_ignores_padding(cell: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    m = rnn_classifier(
        vocab_size=6, num_classes=3, pad_id=0, embed_dim=5, hidden_size=7, cell=cell, bidirectional=bidirectional
    ).eval()
    seq, other = [3, 1, 4, 1, 5], [2, 2, 5, 3, 1, 4, 4]
    outs = []
    for width in (7, 12):
        rows = [_padded(other, width), _padded(seq, width)]  # the sequence is not the longest, nor first
        x = torch.stack([r[0] for r in rows])  # (2, width)
        lengths = torch.tensor([r[1] for r in rows])
        outs.append(m(PaddedBatch(x=x, lengths=lengths, y=torch.zeros(2, dtype=torch.long))))
    alone = m(PaddedBatch(x=torch.tensor([seq]), lengths=torch.tensor([5]), y=torch.zeros(1, dtype=torch.long)))
    assert outs[0].shape == (2, 3)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(outs[0][1], alone[0], atol=1e-6, rtol=0)


def test_classifier_example_input_and_padding_embedding() -> None:
    m = RNNClassifier(vocab_size=4, num_classes=2, pad_id=0, bidirectional=True, num_layers=2)
    (b,) = m.example_input(3)
    assert b.x.shape == (3, 7) and b.lengths.tolist() == [3, 5, 7]
    assert (b.x[0, 3:] == 0).all() and (b.x[0, :3] != 0).all()
    assert m(b).shape == (3, 2)
    assert m.forward_features(b).shape == (3, 2 * 64)
    assert (m.embed.weight[0] == 0).all()
