"""The python_chars corpus: vocabulary, chronological splits, and the token file written once under the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import archzoo.data.text as text_mod
from archzoo.errors import UserError
from archzoo.registry import create_dataset


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ARCHZOO_DATA", str(tmp_path / "data"))
    return tmp_path / "cache"


def test_token_file_is_written_under_the_cache_and_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = create_dataset("python_chars", max_chars=4000, block_size=16, val_fraction=0.1)
    path = Path(b.info["token_file"])
    assert path.parent == cache / "tokens" and path.is_file()
    assert path.stat().st_size == 4000  # one uint8 per character
    assert not (cache.parent / "data").exists()  # nothing beside the data root

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached token file should have been reused")

    monkeypatch.setattr(text_mod, "write_tokens", refuse)
    again = create_dataset("python_chars", max_chars=4000, block_size=16, val_fraction=0.1)
    assert again.info["token_file"] == str(path)
    assert isinstance(again.train.tokens, np.memmap)


def test_another_text_gets_another_file_and_a_bad_file_is_rewritten(cache: Path) -> None:
    a = Path(create_dataset("python_chars", max_chars=3000, block_size=8).info["token_file"])
    b = Path(create_dataset("python_chars", max_chars=3500, block_size=8).info["token_file"])
    assert a != b and a.is_file() and b.is_file()
    a.write_bytes(b"\0" * 10)  # truncated
    assert Path(create_dataset("python_chars", max_chars=3000, block_size=8).info["token_file"]) == a
    assert a.stat().st_size == 3000


def test_splits_are_chronological_and_decode_to_the_reference(cache: Path) -> None:
    text = text_mod.python_reference_text()
    b = create_dataset("python_chars", max_chars=5000, block_size=16, val_fraction=0.1)
    itos = b.info["itos"]
    assert b.info["vocab_size"] == len(itos) == len(set(text)) and itos == sorted(itos)
    assert b.info["contiguous"] is True and b.info["kind"] == "text"
    assert (len(b.train), len(b.val), len(b.test)) == (4000, 500, 500)
    decoded = "".join(itos[int(i)] for i in np.concatenate([b.train.tokens, b.val.tokens, b.test.tokens]))
    assert decoded == text[:5000]
    x, y = next(iter(b.train.batches(4)))
    assert x.shape == (4, 16) and (x[:, 1:] == y[:, :-1]).all()
    stream = len(b.train) // 4  # streams mode: row r reads the r-th quarter of the training text
    assert "".join(itos[int(i)] for i in x[1]) == text[stream : stream + 16]


def test_random_mode_is_not_contiguous_and_bad_arguments_are_user_errors(cache: Path) -> None:
    b = create_dataset("python_chars", max_chars=3000, block_size=8, mode="random")
    assert b.info["contiguous"] is False
    with pytest.raises(UserError, match="val_fraction"):
        create_dataset("python_chars", max_chars=3000, val_fraction=0.6)
    with pytest.raises(UserError, match="max_chars"):
        create_dataset("python_chars", max_chars=200, block_size=64)


# ----------------------------------------------------------------------------- reading files, text_file


def test_read_text_names_the_file_and_byte_of_invalid_utf8(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_bytes("héllo ".encode() + b"\xff\xfe rest")
    with pytest.raises(UserError, match=r"bad.txt is not UTF-8 at byte 7; pass data.args.errors=replace"):
        text_mod.read_text(p)
    assert text_mod.read_text(p, errors="replace") == "héllo \ufffd\ufffd rest"
    with pytest.raises(UserError, match="data.args.errors must be one of strict, replace"):
        text_mod.read_text(p, errors="ignore")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(UserError, match="empty.txt is empty"):
        text_mod.read_text(tmp_path / "empty.txt")
    with pytest.raises(UserError, match="does not exist"):
        text_mod.read_text(tmp_path / "missing.txt")


def _corpus(tmp_path: Path, n: int = 40) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text("".join(f"line {i}: the cat sat on the mat, said the dog.\n" for i in range(n)), encoding="utf-8")
    return p


@pytest.mark.parametrize("tokenizer", ["char", "word", "bpe"])
def test_text_file_splits_chronologically_and_decodes_back(tokenizer: str, tmp_path: Path, cache: Path) -> None:
    p = _corpus(tmp_path)
    extra = {"vocab_size": 300} if tokenizer == "bpe" else {}
    b = create_dataset("text_file", path=str(p), tokenizer=tokenizer, block_size=8, **extra)
    tok, info = b.info["tokenizer"], b.info
    assert info["itos"] == tok.itos and info["vocab_size"] == tok.vocab_size and info["contiguous"] is True
    n = sum(info["tokens"].values())
    assert info["tokens"]["val"] == info["tokens"]["test"] == int(n * 0.1)
    ids = np.concatenate([b.train.tokens, b.val.tokens, b.test.tokens]).tolist()
    text = p.read_text()
    assert ids == tok.encode(text)
    if tokenizer != "word":  # words come back lower-cased and joined by spaces
        assert tok.decode(ids) == text
    assert Path(info["token_file"]).parent == cache / "tokens"


def test_text_file_token_file_is_reused_and_keyed_by_bytes_and_tokenizer(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _corpus(tmp_path)
    first = create_dataset("text_file", path=str(p), block_size=8)
    word = create_dataset("text_file", path=str(p), tokenizer="word", block_size=8)
    assert first.info["token_file"] != word.info["token_file"]  # another tokenizer, another file

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached token file should have been reused")

    monkeypatch.setattr(text_mod, "write_tokens", refuse)
    again = create_dataset("text_file", path=str(p), block_size=8)
    assert again.info["token_file"] == first.info["token_file"] and isinstance(again.train.tokens, np.memmap)
    assert np.array_equal(again.train.tokens, first.train.tokens)
    p.write_text(p.read_text() + "one more line\n")  # other bytes: a new file must be written
    with pytest.raises(AssertionError, match="reused"):
        create_dataset("text_file", path=str(p), block_size=8)


def test_text_file_refusals_name_the_option_to_change(tmp_path: Path, cache: Path) -> None:
    p = _corpus(tmp_path, n=2)
    with pytest.raises(UserError, match="pass data.args.path=FILE"):
        create_dataset("text_file")
    with pytest.raises(UserError, match=r"the val split has \d+ tokens, fewer than data.args.block_size\+1"):
        create_dataset("text_file", path=str(p), block_size=64)
    with pytest.raises(UserError, match="lower data.args.block_size"):
        create_dataset("text_file", path=str(p), block_size=10_000)
    with pytest.raises(UserError, match="vocab_size applies to tokenizer=bpe only"):
        create_dataset("text_file", path=str(p), vocab_size=500)
    with pytest.raises(UserError, match="data.args.mode must be"):
        create_dataset("text_file", path=str(p), mode="shuffled")
    with pytest.raises(UserError, match="data.args.tokenizer must be one of"):
        create_dataset("text_file", path=str(p), tokenizer="sentencepiece")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(("caf\xe9 " * 200).encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8 at byte 3"):
        create_dataset("text_file", path=str(bad), block_size=8)
    b = create_dataset("text_file", path=str(bad), block_size=8, errors="replace")
    assert "\ufffd" in b.info["itos"]


def test_stratified_split_keeps_each_class_share_and_is_fixed() -> None:
    labels = [0] * 100 + [1] * 30 + [2] * 3 + [3] * 1
    tr, va, te = text_mod.stratified_split(labels, 0.1)
    assert sorted(tr + va + te) == list(range(len(labels)))
    count = {s: [sum(labels[i] == c for i in idx) for c in range(4)] for s, idx in (("va", va), ("te", te))}
    assert count["va"] == count["te"] == [10, 3, 0, 0]  # round(3 * 0.1) = 0; the single one trains
    assert text_mod.stratified_split(labels, 0.1) == (tr, va, te)


def test_missing_benchmark_files_say_what_to_set(tmp_path: Path, cache: Path) -> None:
    for name in ("tiny_shakespeare", "ptb", "names", "sms_spam"):
        with pytest.raises(UserError, match="set ARCHZOO_DATA"):
            create_dataset(name, data_dir=str(tmp_path / "nothing"))


# ----------------------------------------------------------------------------- the benchmark corpora


def test_tiny_shakespeare_is_nanogpts_split(data_root: Path, cache: Path) -> None:
    b = create_dataset("tiny_shakespeare", data_dir=str(data_root), block_size=64)
    assert b.info["vocab_size"] == 65 and b.info["test_is_val"] is True and b.test is b.val
    assert (len(b.train), len(b.val)) == (1_003_854, 111_540)  # int(0.9 * 1,115,394) and the rest
    tok = b.info["tokenizer"]
    assert tok.decode(b.train.tokens[:12].tolist()) == "First Citize"


def test_ptb_has_mikolovs_vocabulary_and_token_counts(data_root: Path, cache: Path) -> None:
    b = create_dataset("ptb", data_dir=str(data_root))
    tok = b.info["tokenizer"]
    train_words = set((data_root / "text/ptb/ptb.train.txt").read_text().split())
    assert b.info["vocab_size"] == len(train_words) + 1 == 10_000 and set(tok.itos) == train_words | {"<eos>"}
    assert b.info["tokens"] == {"train": 929_589, "val": 73_760, "test": 82_430}
    # Val and test start with <eos>, so that one stream (batch 1) predicts every one of their tokens.
    assert len(b.test) == 82_431 and len(b.val) == 73_761
    assert tok.decode(b.test.tokens[:6].tolist()) == "<eos> no it was n't black"
    assert sum(y.numel() for _, y in b.test.batches(1)) == 82_430
    # Numbered by frequency for an adaptive softmax: the same words and streams under other ids.
    f = create_dataset("ptb", data_dir=str(data_root), vocab_order="frequency")
    ftok = f.info["tokenizer"]
    assert sorted(ftok.itos) == sorted(tok.itos) and ftok.itos[:3] == ["the", "<unk>", "<eos>"]
    assert ftok.decode(f.test.tokens[:6].tolist()) == "<eos> no it was n't black"
    counts = np.bincount(np.asarray(f.train.tokens), minlength=10_000)
    assert (np.diff(counts) <= 0).all()


def test_names_are_deduplicated_folded_and_stratified(data_root: Path, cache: Path) -> None:
    b = create_dataset("names", data_dir=str(data_root))
    info = b.info
    assert info["num_classes"] == 18 == len(info["classes"]) and info["classes"][0] == "Arabic"
    assert info["pad_id"] == 0 and info["itos"][:2] == ["<pad>", "<unk>"]
    assert all(len(c) == 1 and c.isascii() for c in info["itos"][2:])
    sizes = info["sizes"]
    assert sum(sizes.values()) < 18_015 and sizes["val"] == sizes["test"]
    assert abs(sizes["val"] / sum(sizes.values()) - 0.1) < 0.01
    arabic = int((b.train.labels == 0).sum() + (b.val.labels == 0).sum() + (b.test.labels == 0).sum())
    assert arabic <= 108  # 2000 lines, 108 distinct names
    assert info["tokenizer"].encode("Müller") == info["tokenizer"].encode("Muller")
    uni = create_dataset("names", data_dir=str(data_root), ascii=False)
    assert any(not c.isascii() for c in uni.info["itos"])


def test_sms_spam_splits_on_the_first_tab_and_keeps_duplicates_once(data_root: Path, cache: Path) -> None:
    b = create_dataset("sms_spam", data_dir=str(data_root))
    info = b.info
    assert info["classes"] == ["ham", "spam"] and info["itos"][:2] == ["<pad>", "<unk>"]
    assert sum(info["sizes"].values()) == 5171  # 5574 lines, 403 exact duplicates
    spam = [int((s.labels == 1).sum()) for s in (b.train, b.val, b.test)]
    assert sum(spam) == 653 and spam[1] == spam[2] == 65
    full = create_dataset("sms_spam", data_dir=str(data_root), dedupe=False)
    assert sum(full.info["sizes"].values()) == 5574


@pytest.mark.parametrize("dataset", ["names", "sms_spam"])
def test_labelled_texts_are_each_splits_texts_in_order(dataset: str, data_root: Path, cache: Path) -> None:
    from archzoo.engine.builders import save_info

    b = create_dataset(dataset, data_dir=str(data_root))
    texts, tok = b.info["texts"], b.info["tokenizer"]
    assert isinstance(texts, text_mod.SplitTexts)
    pairs = {}
    for s in ("train", "val", "test"):
        split, got = b.split(s), texts.split(s)
        assert len(got) == len(split) == b.info["sizes"][s]
        batch = next(iter(split.batches(len(split))))  # the stored order
        for i in (0, len(got) // 2, len(got) - 1):
            ids = tok.encode(got[i]) or [tok.itos.index("<unk>")]
            assert batch.x[i, : batch.lengths[i]].tolist() == ids
        pairs[s] = set(zip(got, split.labels.tolist(), strict=True))
        assert len(pairs[s]) == len(got)  # each (text, label) once
    assert not (pairs["train"] & pairs["val"] or pairs["train"] & pairs["test"] or pairs["val"] & pairs["test"])
    run_dir = cache.parent / "run"
    run_dir.mkdir()
    save_info(b.info, run_dir)  # the texts stay out of the run's info.json
    assert "texts" not in json.loads((run_dir / "info.json").read_text())


def test_mlm_corpus_trains_on_ptb_and_sms_training_messages_only(data_root: Path, cache: Path) -> None:
    b = create_dataset("mlm_corpus", data_dir=str(data_root), max_len=32)
    info = b.info
    tok = info["tokenizer"]
    assert info["sizes"] == {"train": 42068 + 4137, "val": 3370, "test": 3761}  # PTB lines + SMS training messages
    train_sms = set(text_mod.mlm_corpus_texts(str(data_root), "sms"))
    held_out = create_dataset("sms_spam", data_dir=str(data_root)).info["texts"]
    assert not train_sms & (set(held_out.val) | set(held_out.test))
    batch = next(iter(b.train.batches(8)))
    assert batch.x.shape[1] <= 32 and (batch.x[:, 0] == info["cls_id"]).all()
    last = batch.x[torch.arange(8), batch.lengths - 1]
    assert (last == info["sep_id"]).all() and info["mask_id"] == tok.special_id("[MASK]")
    # sms_spam with the same tokenizer reads the cached vocabulary: pretraining and fine-tuning agree
    sms = create_dataset("sms_spam", data_dir=str(data_root), tokenizer="wordpiece")
    assert sms.info["tokenizer"] == tok and sms.info["pad_id"] == info["pad_id"] == 0


def test_labelled_texts_take_minilms_tokenizer(data_root: Path, cache: Path) -> None:
    b = create_dataset("names", data_dir=str(data_root), tokenizer="minilm")
    assert b.info["vocab_size"] == 30522 and b.info["cls_id"] == 101 and b.info["pad_id"] == 0
    with pytest.raises(UserError, match="data.args.tokenizer must be"):
        create_dataset("sms_spam", data_dir=str(data_root), tokenizer="sentencepiece")
