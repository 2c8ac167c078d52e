"""The python_chars corpus: vocabulary, chronological splits, and the token file written once under the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
