"""The encoder-decoder Transformer: cached decoding equals recomputing, causality, padding, beams, training."""

import pytest
import torch

from archzoo.cli import main
from archzoo.data.splits import PaddedBatch
from archzoo.errors import UserError
from archzoo.models.transformer import Transformer
from archzoo.registry import create_model


def _model(**kw) -> Transformer:
    torch.manual_seed(0)
    args = {"dim": 16, "heads": 2, "encoder_layers": 2, "decoder_layers": 2, "ff_dim": 24, "dropout": 0.0, **kw}
    return Transformer(11, 9, **args).eval()


def _recomputed_greedy(m: Transformer, src: torch.Tensor, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Greedy decoding that runs the decoder over the whole prefix at every step (no cache)."""
    memory, mask, _ = m.encode(src, lengths)
    seq = torch.full((src.shape[0], 1), m.bos_id)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, _ = m.decode(seq, memory, mask)
        tok = m._allowed(logits[:, -1]).argmax(-1).masked_fill(done, m.pad_id)
        out.append(tok)
        done = done | (tok == m.eos_id)
        seq = torch.cat([seq, tok[:, None]], 1)
        if bool(done.all()):
            break
    return torch.stack(out, 1)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned", "rope"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_cached_greedy_equals_recomputing_the_prefix(positions: str, norm_first: bool) -> None:
    m = _model(positions=positions, norm_first=norm_first)
    (b,) = m.example_input(3)
    ids, attn = m.greedy(b.x, b.lengths, max_len=8)
    assert torch.equal(ids, _recomputed_greedy(m, b.x, b.lengths, 8))
    # the cached steps' logits equal the full teacher-forced pass over the decoded prefix
    full = m(PaddedBatch(b.x, b.lengths, ids, torch.full((3,), ids.shape[1])))  # (B, T, V)
    memory, mask, _ = m.encode(b.x, b.lengths)
    caches = m._caches(8)
    prev = torch.full((3,), m.bos_id)
    for t in range(ids.shape[1]):
        step, _ = m._step(prev, t, memory, mask, caches)
        assert torch.allclose(step, full[:, t], atol=1e-5)
        prev = ids[:, t]
    assert attn.shape == (3, ids.shape[1], b.x.shape[1])


def test_decoder_is_causal() -> None:
    m = _model()
    (b,) = m.example_input(2)
    y = torch.tensor([[3, 4, 5, 6, 2], [4, 4, 3, 2, 0]])
    base = m(PaddedBatch(b.x, b.lengths, y, torch.tensor([5, 4])))
    for t in range(1, 5):  # the decoder reads y[:, t - 1] at position t
        changed = y.clone()
        changed[:, t - 1] = 7
        out = m(PaddedBatch(b.x, b.lengths, changed, torch.tensor([5, 4])))
        assert torch.allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not torch.allclose(out[:, t:], base[:, t:], atol=1e-4)


def test_source_padding_changes_nothing() -> None:
    m = _model()
    y = torch.tensor([[4, 6, 2]])
    alone = PaddedBatch(torch.tensor([[3, 4, 5]]), torch.tensor([3]), y, torch.tensor([3]))
    padded = PaddedBatch(
        torch.tensor([[3, 4, 5, 0, 0], [5, 6, 7, 8, 9]]), torch.tensor([3, 5]), torch.tensor([[4, 6, 2], [3, 2, 0]]),
        torch.tensor([3, 2]),
    )  # fmt: skip
    assert torch.allclose(m(alone)[0], m(padded)[0], atol=1e-5)
    # garbage (not padding ids) behind the length changes nothing either: the key mask hides it
    junk = PaddedBatch(torch.tensor([[3, 4, 5, 9, 9]]), torch.tensor([3]), y, torch.tensor([3]))
    assert torch.allclose(m(alone)[0], m(junk)[0], atol=1e-5)
    g1, a1 = m.greedy(alone.x, alone.lengths, 6)
    g2, a2 = m.greedy(padded.x, padded.lengths, 6)
    assert torch.equal(g1[0], g2[0, : g1.shape[1]])
    assert torch.allclose(a1[0], a2[0, : a1.shape[1], :3], atol=1e-5)
    assert bool((a2[0, :, 3:] == 0).all())  # cross-attention gives padding no weight
    b1, _ = m.beam_search(alone.x, alone.lengths, 3, 6)
    b2, _ = m.beam_search(padded.x, padded.lengths, 3, 6)
    assert torch.equal(b1[0], b2[0, : b1.shape[1]])


def test_beam_of_one_is_greedy_and_wider_beams_score_no_worse() -> None:
    m = _model()
    (b,) = m.example_input(4)
    ids, attn = m.greedy(b.x, b.lengths, 7)
    ids1, attn1 = m.beam_search(b.x, b.lengths, 1, 7, length_penalty=0.0)
    assert torch.equal(ids, ids1) and torch.allclose(attn, attn1, atol=1e-6)

    def logp(seqs: torch.Tensor) -> torch.Tensor:  # log p(y | x) of decoded rows, up to their <eos>
        lens = torch.tensor([int((r == m.eos_id).nonzero()[0]) + 1 if (r == m.eos_id).any() else len(r) for r in seqs])
        y = seqs.clone()
        out = m(PaddedBatch(b.x, b.lengths, y, lens)).float().log_softmax(-1)
        keep = torch.arange(y.shape[1]) < lens[:, None]
        return (out.gather(-1, y.clamp(min=0)[..., None])[..., 0] * keep).sum(1)

    wide, _ = m.beam_search(b.x, b.lengths, 4, 7, length_penalty=0.0)
    assert bool((logp(wide) >= logp(ids) - 1e-4).all())  # without a length penalty the beam maximises log p


def test_registered_builder_tied_and_checked() -> None:
    m = create_model("transformer", src_vocab_size=7, tgt_vocab_size=6, dim=8, heads=2)
    assert m.head.weight is m.tgt_embed.weight
    untied = create_model("transformer", src_vocab_size=7, tgt_vocab_size=6, dim=8, heads=2, tie_embeddings=False)
    assert untied.head.weight is not untied.tgt_embed.weight
    with pytest.raises(UserError):
        Transformer(7, 6, dim=10, heads=4)
    with pytest.raises(UserError):
        Transformer(7, 6, positions="alibi")


def test_attention_maps_every_layer_and_head() -> None:
    m = _model(encoder_layers=1, decoder_layers=3)
    (b,) = m.example_input(2)
    maps = m.attention_maps(b.x, b.lengths, b.y)
    assert [w.shape for w in maps["encoder_self"]] == [(2, 2, 5, 5)]
    assert [w.shape for w in maps["decoder_self"]] == [(2, 2, 3, 3)] * 3
    assert [w.shape for w in maps["decoder_cross"]] == [(2, 2, 3, 5)] * 3
    assert torch.allclose(maps["decoder_cross"][0].sum(-1), torch.ones(2, 2, 3), atol=1e-5)
    assert bool((maps["decoder_self"][1].triu(1) == 0).all())  # causal: nothing above the diagonal
    assert bool((maps["decoder_cross"][2][0, :, :, 3:] == 0).all())  # example 0 has 3 real source tokens


def _train(run, *extra: str) -> dict:
    import json

    args = ["train", "reverse-transformer", "data.args.max_len=8", *extra, "log.progress=none", "--run-dir", str(run)]
    assert main(args) == 0
    return json.loads((run / "results.json").read_text())["metrics"]


def test_viz_attention_writes_every_layer_and_head(tmp_path) -> None:
    run = tmp_path / "run"
    _train(
        run,
        "train.epochs=1",
        "data.args.n=200",
        "data.args.n_val=20",
        "data.args.n_test=20",
        "model.args.dim=16",
        "model.args.heads=2",
        "model.args.encoder_layers=1",
    )
    assert main(["viz", "attention", str(run), "abcdef", "--out", str(tmp_path / "att")]) == 0
    assert (tmp_path / "att" / "attention_abcdef.png").is_file()
    maps = sorted(p.name for p in (tmp_path / "att" / "attention_abcdef").iterdir())
    # 1 encoder and 2 decoder layers of 2 heads: encoder self, decoder self and decoder cross maps
    assert len(maps) == (1 + 2 + 2) * 2 and "decoder_cross_l1_h1.png" in maps and "encoder_self_l0_h1.png" in maps


@pytest.mark.slow
def test_reverse_trains_to_high_exact_match(tmp_path) -> None:
    metrics = _train(
        tmp_path / "run", "train.epochs=4", "data.args.n=4000", "data.args.n_val=200", "data.args.n_test=200",
        "optim.lr=0.003", "optim.warmup_steps=50",
    )  # fmt: skip
    assert metrics["test/exact"] >= 0.9, metrics
