"""The BERT encoder: MiniLM's packaged weights give sentence-transformers' embeddings; heads, masks, pooling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from archzoo.data.splits import PaddedBatch
from archzoo.data.tokenizers import PretrainedTokenizer
from archzoo.errors import UserError
from archzoo.models.bert import MINILM, BertClassifier, BertEncoder, BertMLM, load_minilm_weights, minilm_folder

SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon.",
    "ok",
    "Free entry in 2 a wkly comp to win FA Cup final tkts!",
]


def _padded(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in ids])
    x = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)  # (B, L), [PAD] = 0
    for i, s in enumerate(ids):
        x[i, : len(s)] = torch.tensor(s)
    return x, lengths


@pytest.fixture(scope="module")
def minilm() -> BertEncoder:
    return load_minilm_weights(BertEncoder(**MINILM, dropout=0.0)).eval()


def test_minilm_sentence_embeddings_equal_sentence_transformers(minilm: BertEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    folder = minilm_folder()
    tok = PretrainedTokenizer.from_file(folder / "tokenizer.json")
    x, lengths = _padded([tok.encode(s) for s in SENTENCES])
    assert x[:, 0].eq(tok.special_id("[CLS]")).all() and (lengths.min() < lengths.max())  # padding is exercised
    mask = torch.arange(x.shape[1])[None] < lengths[:, None]
    with torch.no_grad():
        ours = minilm.sentence_embedding(x, mask)
    reference = SentenceTransformer(str(folder), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-4, rtol=0)


def test_padding_does_not_change_a_sentence_embedding(minilm: BertEncoder) -> None:
    x = torch.tensor([[101, 7592, 2088, 102, 0, 0, 0]])
    alone = x[:, :4]
    with torch.no_grad():
        a = minilm.sentence_embedding(alone, torch.ones_like(alone, dtype=torch.bool))
        b = minilm.sentence_embedding(x, x != 0)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_missing_or_misshaped_tensors_are_one_sentence_errors(tmp_path: Path) -> None:
    state = load_file(str(minilm_folder() / "model.safetensors"))
    small = BertEncoder(**{**MINILM, "depth": 1})
    missing = {k: v for k, v in state.items() if k != "encoder.layer.0.attention.self.key.weight"}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(UserError, match="lack the tensor encoder.layer.0.attention.self.key.weight"):
        load_minilm_weights(small, tmp_path / "missing.safetensors")
    bad = dict(state)
    bad["encoder.layer.0.intermediate.dense.weight"] = torch.zeros(100, 384)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(UserError, match=r"ff.fc1.weight the shape \(100, 384\), not \(1536, 384\)"):
        load_minilm_weights(small, tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="Cannot read BERT weights"):
        load_minilm_weights(small, tmp_path / "junk.safetensors")


def _batch(vocab: int = 50) -> PaddedBatch:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, vocab, (3, 6), generator=g)
    lengths = torch.tensor([6, 4, 2])
    x[torch.arange(6)[None] >= lengths[:, None]] = 0
    return PaddedBatch(x=x, lengths=lengths)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_classifier_ignores_what_lies_past_each_length(positions: str, norm_first: bool) -> None:
    torch.manual_seed(0)
    model = BertClassifier(50, 3, pool="mean", dim=16, depth=2, heads=2, dropout=0.0, positions=positions,
                           norm_first=norm_first, max_len=16).eval()  # fmt: skip
    b = _batch()
    other = PaddedBatch(x=b.x.clone(), lengths=b.lengths)
    other.x[2, 2:] = 7  # a different filler where batch row 2 is padding
    with torch.no_grad():
        torch.testing.assert_close(model(b), model(other), atol=1e-5, rtol=0)
    assert model(b).shape == (3, 3)


def test_mlm_decoder_is_tied_and_its_weights_start_a_classifier(tmp_path: Path) -> None:
    from archzoo.engine.pretrained import load_pretrained

    torch.manual_seed(0)
    mlm = BertMLM(50, dim=16, depth=1, heads=2, dropout=0.0, max_len=16)
    logits = mlm(_batch())
    assert logits.shape == (3, 6, 50)
    logits.sum().backward()
    assert mlm.encoder.embed.word.weight.grad is not None
    assert not any(p.shape == (50, 16) for n, p in mlm.named_parameters() if n.startswith("head."))  # tied, no copy
    save_file(mlm.state_dict(), str(tmp_path / "mlm.safetensors"))
    clf = BertClassifier(50, 2, dim=16, depth=1, heads=2, dropout=0.0, max_len=16)
    report = load_pretrained(clf, tmp_path / "mlm.safetensors", quiet=True)
    assert set(report.new_head) == {"head.weight", "head.bias"}
    torch.testing.assert_close(clf.encoder.embed.word.weight, mlm.encoder.embed.word.weight)


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UserError, match="pool"):
        BertClassifier(10, 2, pool="max")
    with pytest.raises(UserError, match="positions"):
        BertEncoder(10, positions="alibi")
    with pytest.raises(UserError, match="longer than the model's max_len"):
        BertEncoder(10, dim=8, heads=2, max_len=4)(torch.ones(1, 5, dtype=torch.long))
