"""Text corpora as token streams: the Python language reference that ships with CPython.

``pydoc_data.topics.topics`` holds the reference's sections (the text that
``help("assert")`` prints): about 465,000 characters of English prose and
grammar, on every machine that has Python, with no download. Its characters are
the tokens (a vocabulary of about a hundred).

The token array is written once, as a raw ``.bin`` file under the writable
cache (:func:`archzoo.data.root.cache_dir`), named by a hash of the text and
the vocabulary, and memory-mapped by each split; a later build with the same
text reuses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from archzoo.data.root import cache_dir
from archzoo.data.splits import DataBundle, TokenStream, write_tokens
from archzoo.errors import UserError
from archzoo.registry import register_dataset


def python_reference_text() -> str:
    """The sections of the Python language reference, joined in sorted order of their names."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


def char_vocab(text: str) -> list[str]:
    """The sorted distinct characters of ``text``: ``itos[id]`` is the character of token ``id``."""
    return sorted(set(text))


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds every id."""
    return np.dtype(np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32)


def cached_tokens(name: str, text: str, itos: list[str]) -> tuple[Path, np.dtype, int]:
    """The ``.bin`` token file of ``text`` under the cache, written if missing; (path, dtype, tokens).

    The file name carries a hash of the text and the vocabulary, so a changed text
    (another Python version, another ``max_chars``) gets its own file.
    """
    dtype = token_dtype(len(itos))
    h = hashlib.sha256()
    h.update(text.encode("utf-8"))
    h.update(b"\0vocab\0")
    h.update("\0".join(itos).encode("utf-8"))
    path = cache_dir("tokens") / f"{name}-{h.hexdigest()[:16]}.{dtype.name}.bin"
    n = len(text)
    if not (path.is_file() and path.stat().st_size == n * dtype.itemsize):
        stoi = {c: i for i, c in enumerate(itos)}
        ids = np.fromiter((stoi[c] for c in text), dtype=dtype, count=n)
        write_tokens(path, ids, dtype)  # atomic: a reader never sees half a file
    return path, dtype, n


@register_dataset("python_chars")
def python_chars(
    block_size: int = 64, mode: str = "streams", max_chars: int | None = None, val_fraction: float = 0.05
) -> DataBundle:
    """The Python language reference as a character corpus, split chronologically.

    The first ``1 - 2 * val_fraction`` of the text trains, the next ``val_fraction``
    validates and the last ``val_fraction`` tests, so no split reads text the one
    before it trained on. The vocabulary is that of the whole reference, whatever
    ``max_chars``.

    Args:
        block_size: tokens per row of a batch, the truncated-BPTT length (default 64).
        mode: ``"streams"`` (each row continues the row of the batch before: recurrent
            models carry their state) or ``"random"`` (random windows, for transformers).
        max_chars: keep only the first ``max_chars`` characters (default: all; for quick tests).
        val_fraction: the share of the text in each of val and test (default 0.05).
    """
    if not 0.0 < val_fraction < 0.5:
        raise UserError(f"data.val_fraction must be in (0, 0.5) for python_chars, got {val_fraction}.")
    if max_chars is not None and max_chars < 1:
        raise UserError(f"data.args.max_chars must be positive, got {max_chars}.")
    full = python_reference_text()
    itos = char_vocab(full)
    text = full[:max_chars] if max_chars is not None else full
    path, dtype, n = cached_tokens("python_chars", text, itos)
    tokens = np.memmap(path, dtype=dtype, mode="r")  # (n,), read-only, shared by the splits
    n_val = int(n * val_fraction)
    lo_val, lo_test = n - 2 * n_val, n - n_val
    need = 2 * (block_size + 1)
    if n_val < need:
        raise UserError(
            f"python_chars: {n} characters give val and test splits of {n_val}, fewer than {need}; "
            f"raise data.args.max_chars or data.val_fraction, or lower data.args.block_size."
        )
    splits = [TokenStream(tokens[a:b], block_size, mode) for a, b in ((0, lo_val), (lo_val, lo_test), (lo_test, n))]
    info: dict[str, Any] = {
        "vocab_size": len(itos),
        "itos": itos,
        "kind": "text",
        "block_size": block_size,
        "contiguous": mode == "streams",
        "tokens": {"train": lo_val, "val": n_val, "test": n_val},
        "token_file": str(path),
    }
    return DataBundle(*splits, info=info)
