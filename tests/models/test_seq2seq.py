"""The recurrent encoder-decoder: shapes, attention over valid positions, padding invariance, decoding."""

import pytest
import torch

from archzoo.data.splits import PaddedBatch
from archzoo.models.seq2seq import Seq2Seq
from archzoo.registry import create_model


def _model(cell: str = "gru", attention: bool = True, **kw) -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(11, 9, embed_dim=8, hidden_size=12, cell=cell, attention=attention, **kw).eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", [True, False])
def test_shapes(cell: str, attention: bool) -> None:
    m = _model(cell, attention)
    (b,) = m.example_input(3)
    assert m(b).shape == (3, b.y.shape[1], 9)
    ids, attn = m.greedy(b.x, b.lengths, max_len=6)
    assert ids.shape[0] == 3 and ids.shape[1] <= 6 and attn.shape == (3, ids.shape[1], b.x.shape[1])
    ids, attn = m.beam_search(b.x, b.lengths, beam=3, max_len=6)
    assert ids.shape[0] == 3 and attn.shape == (3, ids.shape[1], b.x.shape[1])


def test_registered_builders() -> None:
    for name, cell in (("seq2seq_gru", "gru"), ("seq2seq_lstm", "lstm")):
        m = create_model(name, src_vocab_size=7, tgt_vocab_size=6, hidden_size=8, embed_dim=4, attention=False)
        assert m.cell == cell and m.attention is None


def test_attention_sums_to_one_over_valid_positions() -> None:
    m = _model()
    (b,) = m.example_input(3)
    _, attn = m.forward_with_attention(b)
    assert torch.allclose(attn.sum(-1), torch.ones(attn.shape[:2]), atol=1e-6)
    pad = ~b.mask  # (B, L_x)
    assert bool((attn.masked_select(pad[:, None].expand_as(attn)) == 0).all())
    ids, g = m.greedy(b.x, b.lengths, max_len=5)
    alive = g.sum(-1) > 0
    assert torch.allclose(g.sum(-1)[alive], torch.ones(int(alive.sum())), atol=1e-6)
    assert bool((g.masked_select(pad[:, None].expand_as(g)) == 0).all())


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", [True, False])
def test_source_padding_changes_nothing(cell: str, attention: bool) -> None:
    m = _model(cell, attention)
    x = torch.tensor([[3, 4, 5]])
    y = torch.tensor([[4, 6, 2]])
    alone = PaddedBatch(x, torch.tensor([3]), y, torch.tensor([3]))
    padded = PaddedBatch(
        torch.tensor([[3, 4, 5, 0, 0], [5, 6, 7, 8, 9]]), torch.tensor([3, 5]), torch.tensor([[4, 6, 2], [3, 2, 0]]),
        torch.tensor([3, 2]),
    )  # fmt: skip
    assert torch.allclose(m(alone)[0], m(padded)[0], atol=1e-5)
    g1, a1 = m.greedy(alone.x, alone.lengths, 6)
    g2, a2 = m.greedy(padded.x, padded.lengths, 6)
    n = g1.shape[1]
    assert torch.equal(g1[0], g2[0, :n]) and torch.allclose(a1[0], a2[0, :n, :3], atol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_one_is_greedy(cell: str) -> None:
    m = _model(cell)
    (b,) = m.example_input(4)
    g, ga = m.greedy(b.x, b.lengths, 8)
    s, sa = m.beam_search(b.x, b.lengths, beam=1, max_len=8)
    assert torch.equal(g, s) and torch.allclose(ga, sa, atol=1e-6)


def test_beam_finds_no_worse_sequence_than_greedy() -> None:
    m = _model()
    (b,) = m.example_input(4)

    def logp(ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != 0).sum(1)
        batch = PaddedBatch(b.x, b.lengths, ids, lengths)
        lp = m(batch).log_softmax(-1).gather(2, ids[..., None]).squeeze(-1)
        return (lp * batch.y_mask).sum(1)

    g, _ = m.greedy(b.x, b.lengths, 8)
    s, _ = m.beam_search(b.x, b.lengths, beam=5, max_len=8, length_penalty=0.0)
    ended = (g == 2).any(1) & (s == 2).any(1)
    assert bool((logp(s)[ended] >= logp(g)[ended] - 1e-4).all())


def test_scheduled_sampling_draws_from_the_global_rng() -> None:
    m = _model(teacher_forcing=0.5).train()
    (b,) = m.example_input(3)
    torch.manual_seed(1)
    a = m(b)
    torch.manual_seed(1)
    assert torch.equal(a, m(b))
    m.eval()
    state = torch.get_rng_state()
    m(b)
    assert torch.equal(state, torch.get_rng_state())  # evaluation feeds the true tokens and draws nothing
