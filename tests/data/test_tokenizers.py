"""Tokenizers: round trips, unknowns, the PTB reading, byte-level BPE, and JSON save/load of every kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.data.tokenizers import (
    EOS,
    PAD,
    UNK,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    fold_ascii,
    make_tokenizer,
    ptb_words,
)
from archzoo.errors import UserError


def test_char_tokenizer_round_trips_and_orders_specials_first() -> None:
    tok = CharTokenizer.train("hello world", specials=[PAD], unk=UNK)
    assert tok.itos[:2] == [PAD, UNK] and tok.itos[2:] == sorted(set("hello world"))
    assert tok.vocab_size == len(tok.itos) == 2 + 8
    ids = tok.encode("hello")
    assert tok.decode(ids) == "hello"
    assert tok.encode("hex") == [tok.itos.index("h"), tok.itos.index("e"), 1]  # x is unknown


def test_char_tokenizer_without_unk_names_the_unknown_characters() -> None:
    tok = CharTokenizer.train("abc")
    with pytest.raises(UserError, match=r"2 character\(s\) outside the vocabulary: 'x', 'z'"):
        tok.encode("abzx")


def test_ascii_fold_is_the_tutorials_and_the_tokenizer_applies_it() -> None:
    assert fold_ascii("Ślusàrski") == "Slusarski"
    assert fold_ascii("Großmann-Jö 1\u00a0") == "GromannJo "  # ß, -, the digit and NBSP dropped; the space kept
    tok = CharTokenizer.train(["Müller"], fold="ascii")
    assert tok.itos == sorted(set("Muller"))
    assert tok.decode(tok.encode("Müller")) == "Muller"


def test_word_tokenizer_regex_min_freq_and_unknown() -> None:
    tok = WordTokenizer.train(["The cat, the hat.", "a cat"], min_freq=2, specials=[PAD])
    assert tok.itos == [PAD, UNK, "cat", "the"]  # most frequent first, ties alphabetical
    assert tok.encode("THE dog cat") == [3, 1, 2]
    assert tok.decode(tok.encode("the cat")) == "the cat"
    strict = WordTokenizer(["a"], unk=None)
    with pytest.raises(UserError, match=r"word\(s\) outside the vocabulary: 'b'"):
        strict.encode("a b")
    with pytest.raises(UserError, match="min_freq"):
        WordTokenizer.train("a", min_freq=0)


def test_ptb_mode_is_line_split_plus_eos_over_the_corpus_vocabulary() -> None:
    corpus = " the cat <unk> sat \n the N dogs \n"
    assert ptb_words(corpus) == [w for line in corpus.splitlines() for w in line.split() + [EOS]]
    tok = WordTokenizer.train(corpus, mode="ptb")
    assert tok.itos == ["the", "cat", "<unk>", "sat", EOS, "N", "dogs"]  # first appearance, no extra unk
    assert tok.encode(" the cat\n") == [0, 1, 4]
    assert tok.encode("the zebra") == [0, 2, 4]  # unseen words are the corpus' own <unk>
    assert tok.decode(tok.encode(corpus)) == "the cat <unk> sat\nthe N dogs\n"
    assert ptb_words("a\nb") == ["a", EOS, "b", EOS] and ptb_words("") == []


def test_ptb_mode_can_number_words_most_frequent_first() -> None:
    corpus = " the cat <unk> sat \n the N dogs \n dogs the \n"
    tok = WordTokenizer.train(corpus, mode="ptb", order="frequency")
    # the: 3, <eos>: 3 (ties keep first appearance), dogs: 2, then the singletons as they appear
    assert tok.itos == ["the", EOS, "dogs", "cat", "<unk>", "sat", "N"]
    assert sorted(tok.itos) == sorted(WordTokenizer.train(corpus, mode="ptb").itos)
    with pytest.raises(UserError, match="order"):
        WordTokenizer.train(corpus, mode="ptb", order="alphabetical")


def test_byte_level_bpe_round_trips_any_text() -> None:
    text = "To be, or not to be, that is the question.\n" * 40 + "Whether 'tis nobler in the mind to suffer\n" * 20
    tok = BPETokenizer.train(text, vocab_size=300)
    assert 256 < tok.vocab_size <= 300 and len(tok.itos) == tok.vocab_size
    for s in ["to be or not", "Ünïcödé ✓ and\ttabs\n", ""]:
        assert tok.decode(tok.encode(s)) == s
    assert len(tok.encode("to be, or not to be")) < len("to be, or not to be")  # merges learnt
    assert BPETokenizer.train(text, vocab_size=300) == tok  # training is deterministic: the cache key holds
    with pytest.raises(UserError, match="vocab_size"):
        BPETokenizer.train(text, vocab_size=100)


@pytest.mark.parametrize("kind", ["char", "word", "word-ptb", "bpe"])
def test_every_kind_saves_as_json_and_loads_to_an_equal_tokenizer(kind: str, tmp_path: Path) -> None:
    text = "the quick brown fox\njumps over the lazy dog\n" * 5
    if kind == "word-ptb":
        tok = WordTokenizer.train(text, mode="ptb")
    else:
        tok = make_tokenizer(kind, text, **({"vocab_size": 270} if kind == "bpe" else {}))
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    back = Tokenizer.load(path)
    assert type(back) is type(tok) and back == tok and back.identity() == tok.identity()
    assert back.itos == tok.itos and back.encode(text) == tok.encode(text)
    assert type(tok).load(path) == tok
    other = CharTokenizer if kind != "char" else WordTokenizer
    with pytest.raises(UserError, match="not a"):
        other.load(path)


def test_load_refuses_what_is_not_a_tokenizer(tmp_path: Path) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"type": "sentencepiece"}')
    with pytest.raises(UserError, match="not a tokenizer file"):
        Tokenizer.load(bad)
    bad.write_text("{")
    with pytest.raises(UserError, match="not a readable tokenizer file"):
        Tokenizer.load(bad)
    with pytest.raises(UserError, match="must be one of char, word, bpe"):
        make_tokenizer("sentencepiece", "x")


def test_identity_tells_vocabularies_apart() -> None:
    a, b = CharTokenizer.train("abc"), CharTokenizer.train("abd")
    assert a != b and a.identity() != b.identity()
    assert CharTokenizer.train("abc", fold="ascii") != a  # the fold changes what encode does


def test_pretrained_tokenizer_reads_minilms_file_with_bert_specials(tmp_path: Path) -> None:
    from archzoo.data.tokenizers import PretrainedTokenizer
    from archzoo.models.bert import minilm_folder

    tok = PretrainedTokenizer.from_file(minilm_folder() / "tokenizer.json")
    assert tok.vocab_size == 30522
    assert tok.specials == {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
    ids = tok.encode("Hello world.")
    assert ids == [101, 7592, 2088, 1012, 102]  # the [CLS] ... [SEP] template of the file, no padding
    assert tok.decode(ids) == "hello world."
    tok.save(tmp_path / "tokenizer.json")
    back = Tokenizer.load(tmp_path / "tokenizer.json")
    assert isinstance(back, PretrainedTokenizer) and back == tok and back.encode("Hello world.") == ids


def test_wordpiece_learns_bert_specials_first_and_wraps_each_text() -> None:
    from archzoo.data.tokenizers import BERT_SPECIALS, PretrainedTokenizer

    tok = PretrainedTokenizer.train_wordpiece(["the cat sat on the mat", "the dog sat on the log"] * 20, 60)
    assert tok.itos[:5] == list(BERT_SPECIALS)
    ids = tok.encode("The cat sat")
    assert ids[0] == tok.special_id("[CLS]") and ids[-1] == tok.special_id("[SEP]")
    assert tok.decode(ids) == "the cat sat"


def test_a_tokenizer_file_that_does_not_parse_is_one_sentence(tmp_path: Path) -> None:
    from archzoo.data.tokenizers import PretrainedTokenizer

    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "WordPiece", "vocab": 3}}')
    with pytest.raises(UserError, match="is not a tokenizer.json that the tokenizers library can read") as e:
        PretrainedTokenizer.from_file(bad)
    assert "\n" not in str(e.value)
