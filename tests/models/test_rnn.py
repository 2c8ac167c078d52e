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


@pytest.mark.skipif(
    not torch.backends.cpu.get_cpu_capability().startswith("AVX512"),
    reason="PyTorch's CPU bf16 LSTM (oneDNN) needs AVX-512; this CPU has "
    + torch.backends.cpu.get_cpu_capability()
    + " (train.precision=bf16 refuses such a model here: tests/engine/test_bf16_lstm_refusal.py)",
)
def test_adaptive_head_nll_stays_fp32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    m = lstm_lm(vocab_size=50, embed_dim=8, hidden_size=16, head="adaptive", cutoffs=[10, 30], div_value=2.0).eval()
    x, y = torch.randint(0, 50, (3, 7)), torch.randint(0, 50, (3, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll_bf16, _ = m(x, targets=y)
    assert nll_bf16.dtype == torch.float32


def test_adaptive_head_is_an_exact_distribution_and_scores_targets_alone() -> None:
    torch.manual_seed(0)
    m = lstm_lm(vocab_size=50, embed_dim=8, hidden_size=16, head="adaptive", cutoffs=[10, 30], div_value=2.0).eval()
    assert m.scores_targets and not lstm_lm(vocab_size=50).scores_targets
    x, y = torch.randint(0, 50, (3, 7)), torch.randint(0, 50, (3, 7))
    logp, state = m(x)
    assert logp.shape == (3, 7, 50)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(3, 7), atol=1e-5, rtol=0)
    nll, state2 = m(x, targets=y)
    assert nll.shape == (3, 7)
    torch.testing.assert_close(nll, -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(state2[0], state[0])
    # tied, the head's shortlist rows are the embeddings of the 10 most frequent ids
    tied = lstm_lm(vocab_size=50, embed_dim=16, hidden_size=16, head="adaptive", cutoffs=[10], tie_weights=True).eval()
    assert tied.head.head.weight.shape == (1, 16)  # the one cluster row alone
    out = tied.drop(tied.forward_features(x)[0]).reshape(-1, 16)
    logits = torch.cat([out @ tied.embed.weight[:10].T, tied.head.head(out)], 1)  # (N, 10 + 1)
    want = logits.log_softmax(-1)[:, :10].view(3, 7, 10)
    torch.testing.assert_close(tied(x)[0][..., :10], want, atol=1e-5, rtol=0)
    nll, _ = tied(x, targets=y)
    nll.sum().backward()
    assert tied.embed.weight.grad[:10].abs().sum() > 0  # the read-out trains the shared rows
    # the adaptive head is refused where it cannot work
    with pytest.raises(UserError, match="tie_weights"):
        lstm_lm(vocab_size=50, embed_dim=8, hidden_size=16, head="adaptive", cutoffs=[10], tie_weights=True)
    for bad in ([], [30, 10], [10, 50]):
        with pytest.raises(UserError, match="cutoffs"):
            lstm_lm(vocab_size=50, hidden_size=16, head="adaptive", cutoffs=bad)
    with pytest.raises(UserError, match="div_value"):
        lstm_lm(vocab_size=50, hidden_size=8, head="adaptive", cutoffs=[10, 30], div_value=4.0)
    with pytest.raises(UserError, match="head"):
        lstm_lm(vocab_size=50, head="hierarchical")


def test_init_range_starts_the_embedding_and_read_out_uniform() -> None:
    m = lstm_lm(vocab_size=400, embed_dim=32, hidden_size=32, init_range=0.1)
    for w in (m.embed.weight, m.head.weight):
        assert w.abs().max() <= 0.1 and w.abs().max() > 0.09
    assert (m.head.bias == 0).all()
    assert lstm_lm(vocab_size=400, embed_dim=32).embed.weight.abs().max() > 1  # torch's N(0, 1)
    with pytest.raises(UserError, match="init_range"):
        lstm_lm(vocab_size=5, init_range=-1)


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


# ----------------------------------------------------------------------------- impl="cells", pooling


def _mixed_batch(vocab: int = 9, lengths: tuple[int, ...] = (4, 9, 1, 6, 9, 2)) -> PaddedBatch:
    """Sequences of mixed lengths padded to the longest (plus two), the longest neither first nor last."""
    g = torch.Generator().manual_seed(3)
    n = torch.tensor(lengths)
    x = torch.zeros(len(lengths), int(n.max()) + 2, dtype=torch.long)
    for i, k in enumerate(lengths):
        x[i, :k] = torch.randint(1, vocab, (k,), generator=g)
    return PaddedBatch(x=x, lengths=n, y=torch.zeros(len(lengths), dtype=torch.long))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_lm_cells_equal_fused_with_the_same_weights(cell: str) -> None:
    torch.manual_seed(0)
    fused = lstm_lm(vocab_size=11, embed_dim=6, hidden_size=8, num_layers=2, cell=cell, dropout=0.2).eval()
    cells = lstm_lm(vocab_size=11, embed_dim=6, hidden_size=8, num_layers=2, cell=cell, dropout=0.2, impl="cells")
    assert list(cells.state_dict()) == list(fused.state_dict())
    cells.load_state_dict(fused.state_dict(), strict=True)
    cells.eval()
    x = torch.randint(0, 11, (3, 10))
    a, sa = fused(x[:, :4])
    b, sb = cells(x[:, :4])
    a2, _ = fused(x[:, 4:], sa)
    b2, _ = cells(x[:, 4:], sb)  # the state of one carries into the next block, as truncated BPTT needs
    torch.testing.assert_close(torch.cat([b, b2], 1), torch.cat([a, a2], 1), atol=1e-5, rtol=0)


def test_lm_refuses_bidirectional_and_unknown_impl() -> None:
    with pytest.raises(UserError, match="cannot be bidirectional: the backward direction would read the tokens"):
        lstm_lm(vocab_size=5, bidirectional=True)
    with pytest.raises(UserError, match="impl"):
        lstm_lm(vocab_size=5, impl="cudnn")
    with pytest.raises(UserError, match="pool"):
        rnn_classifier(vocab_size=5, num_classes=2, pool="max")


@pytest.mark.parametrize("pool", ["last", "mean", "attention"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_classifier_cells_equal_fused_on_mixed_lengths(cell: str, bidirectional: bool, num_layers: int, pool: str):
    torch.manual_seed(0)
    kw = dict(
        vocab_size=9, num_classes=4, embed_dim=5, hidden_size=6, cell=cell, bidirectional=bidirectional,
        num_layers=num_layers, dropout=0.3, pool=pool,
    )  # fmt: skip
    fused = rnn_classifier(**kw).eval()
    cells = rnn_classifier(**kw, impl="cells").eval()
    cells.load_state_dict(fused.state_dict(), strict=True)
    batch = _mixed_batch()
    torch.testing.assert_close(cells(batch), fused(batch), atol=1e-5, rtol=0)
    if pool == "attention":
        torch.testing.assert_close(cells.last_attention, fused.last_attention, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["fused", "cells"])
@pytest.mark.parametrize("pool", ["last", "mean", "attention"])
def test_classifier_pooling_reads_valid_steps_only(pool: str, impl: str) -> None:
    torch.manual_seed(0)
    m = rnn_classifier(
        vocab_size=9, num_classes=3, embed_dim=5, hidden_size=6, bidirectional=True, pool=pool, impl=impl
    )
    m.eval()
    batch = _mixed_batch()
    logits = m(batch)
    alpha = m.last_attention
    for i, n in enumerate(batch.lengths.tolist()):
        one = PaddedBatch(x=batch.x[i : i + 1, :n], lengths=torch.tensor([n]), y=batch.y[i : i + 1])
        torch.testing.assert_close(m(one)[0], logits[i], atol=1e-5, rtol=0)  # padding changes nothing
    if pool == "attention":
        assert alpha.shape == batch.x.shape
        valid = torch.arange(batch.x.shape[1])[None, :] < batch.lengths[:, None]
        assert (alpha[~valid] == 0).all() and (alpha[valid] > 0).all()
        torch.testing.assert_close(alpha.sum(1), torch.ones(len(alpha)))
        assert not alpha.requires_grad
    else:
        assert m.last_attention is None


def test_classifier_mean_pool_is_the_mean_of_valid_outputs() -> None:
    torch.manual_seed(0)
    m = RNNClassifier(vocab_size=9, num_classes=2, embed_dim=5, hidden_size=6, pool="mean").eval()
    batch = _mixed_batch()
    pooled = m.forward_features(batch)
    for i, n in enumerate(batch.lengths.tolist()):
        out, _ = m.rnn(m.embed(batch.x[i : i + 1, :n]))  # (1, n, H): the sequence alone
        torch.testing.assert_close(pooled[i], out[0].mean(0), atol=1e-5, rtol=0)


def test_classifier_cells_backward() -> None:
    cells = rnn_classifier(
        vocab_size=9, num_classes=3, cell="lstm", bidirectional=True, num_layers=2, pool="attention", impl="cells"
    ).train()
    cells(_mixed_batch()).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in cells.parameters())


# ----------------------------------------------------------------------------- a nonlinearity between layers


def test_between_layers_is_an_affine_map_and_nonlinearity_on_each_step() -> None:
    """The stack equals running its layers by hand with tanh(A o + a) between them."""
    torch.manual_seed(0)
    m = lstm_lm(vocab_size=11, embed_dim=6, hidden_size=8, num_layers=3, between="tanh").eval()
    x = torch.randint(0, 11, (2, 7))
    logits, (h, c) = m(x)
    assert h.shape == c.shape == (3, 2, 8)
    out, hs, cs = m.embed(x), [], []
    for i, layer in enumerate(m.rnn.layers):
        assert isinstance(layer, torch.nn.LSTM) and layer.num_layers == 1
        if i:
            out = torch.tanh(out @ m.rnn.maps[i - 1].weight.T + m.rnn.maps[i - 1].bias)
        out, (hi, ci) = layer(out)
        hs.append(hi)
        cs.append(ci)
    torch.testing.assert_close(logits, m.head(out), atol=1e-6, rtol=0)
    torch.testing.assert_close(h, torch.cat(hs), atol=1e-6, rtol=0)
    # Carried state: two halves equal one pass, as for the plain stack.
    a, s = m(x[:, :3])
    b, _ = m(x[:, 3:], s)
    torch.testing.assert_close(torch.cat([a, b], 1), logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("pool", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_between_layers_cells_equal_fused_and_ignore_padding(bidirectional: bool, pool: str) -> None:
    torch.manual_seed(0)
    kw = dict(
        vocab_size=9, num_classes=4, embed_dim=5, hidden_size=6, cell="gru", bidirectional=bidirectional,
        num_layers=2, pool=pool, between="relu",
    )  # fmt: skip
    fused = rnn_classifier(**kw).eval()
    cells = rnn_classifier(**kw, impl="cells").eval()
    cells.load_state_dict(fused.state_dict(), strict=True)
    batch = _mixed_batch()
    torch.testing.assert_close(cells(batch), fused(batch), atol=1e-5, rtol=0)
    # One sequence alone gives what it gives inside the padded batch.
    n = int(batch.lengths[0])
    alone = PaddedBatch(x=batch.x[:1, :n], lengths=batch.lengths[:1], y=batch.y[:1])
    torch.testing.assert_close(fused(alone)[0], fused(batch)[0], atol=1e-5, rtol=0)


def test_between_layers_refuses_bad_settings() -> None:
    with pytest.raises(UserError, match="between must be 'none' or one of"):
        lstm_lm(vocab_size=5, num_layers=2, between="sigmoid")
    with pytest.raises(UserError, match="needs model.args.num_layers >= 2"):
        rnn_classifier(vocab_size=5, num_classes=2, between="tanh")
