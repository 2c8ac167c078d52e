"""Text corpora as token streams, and labelled text as padded sequences.

Corpora (:class:`~archzoo.data.splits.TokenStream`): ``python_chars`` (embedded),
``tiny_shakespeare``, ``ptb``, ``text_file`` (any UTF-8 file, char, word or
BPE tokens) and ``token_file`` (a raw file of token ids, tokenised elsewhere; no tokenizer). Labelled text (:class:`~archzoo.data.splits.PaddedSequences`):
``names`` (surname -> language, characters) and ``sms_spam`` (ham/spam, words).
Every dataset puts its tokenizer (:mod:`archzoo.data.tokenizers`) in
``info["tokenizer"]``, saved with the run, and its vocabulary in ``info["itos"]``;
the labelled ones put each split's texts, as the tokenizer read them, in
``info["texts"]`` (:class:`SplitTexts`, which the run's info.json leaves out), so a
baseline can be fitted on exactly the texts the network saw.

Files are read with :func:`read_text` (strict UTF-8 unless ``errors="replace"``),
found under the data root (:func:`archzoo.data.root.data_root`), and each
corpus is encoded once into a ``.bin`` token file under the cache
(:func:`cached_token_file`), keyed by the SHA-256 of the file's bytes and the
tokenizer's JSON, then memory-mapped.

python_chars: the Python language reference that ships with CPython.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archzoo.data.root import PathLike, cache_dir, data_root
from archzoo.data.splits import DataBundle, PaddedSequences, TokenStream, write_tokens
from archzoo.data.tokenizers import (
    EOS,
    PAD,
    UNK,
    CharTokenizer,
    PretrainedTokenizer,
    Tokenizer,
    WordTokenizer,
    make_tokenizer,
)
from archzoo.errors import DataError, UserError
from archzoo.registry import register_dataset

#: The seed of every data split drawn here: the splits do not change with the run's seed.
SPLIT_SEED = 0
ERRORS = ("strict", "replace")


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
        "tokenizer": CharTokenizer(itos),
    }
    return DataBundle(*splits, info=info)


# ----------------------------------------------------------------------------- reading files


def read_text(path: PathLike, errors: str = "strict") -> str:
    """The text of a UTF-8 file.

    Args:
        path: the file.
        errors: ``"strict"`` (default): a byte sequence that is not UTF-8 is a
            :class:`~archzoo.errors.DataError` naming the file and the byte offset;
            ``"replace"``: such bytes become U+FFFD.

    Raises:
        DataError: the file is missing, unreadable, not UTF-8 (strict) or empty.
    """
    return _read(Path(path), errors)[0]


def _read(path: Path, errors: str) -> tuple[str, str]:
    """(text, SHA-256 of the file's bytes and the decoding) of ``path``."""
    if errors not in ERRORS:
        raise UserError(f"data.args.errors must be one of {', '.join(ERRORS)}, not {errors!r}.")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror or e}.") from None
    try:
        text = raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 at byte {e.start}; pass data.args.errors=replace to replace such bytes."
        ) from None
    if not text:
        raise DataError(f"The corpus {path} is empty.")
    h = hashlib.sha256(raw)
    h.update(f"\0{errors}".encode())
    return text, h.hexdigest()


def _data_file(dataset: str, data_dir: PathLike | None, rel: str) -> Path:
    """``<data root>/rel``, or a one-sentence DataError saying what to set."""
    path = data_root(data_dir) / rel
    if not path.is_file():
        raise DataError(
            f"{dataset} needs {path}, which does not exist; set ARCHZOO_DATA (or --data-dir or data.dir) "
            f"to a data root that holds {rel}."
        )
    return path


# ----------------------------------------------------------------------------- cached token streams


def cached_token_file(name: str, digest: str, tokenizer: Tokenizer, text: str) -> tuple[Path, np.dtype, int]:
    """The ``.bin`` file of ``tokenizer.encode(text)`` under the cache, encoded and written only if missing.

    The file is named by a hash of ``digest`` (the SHA-256 of the source file's
    bytes, :func:`_read`) and the tokenizer's identity (its JSON), so another file or
    another vocabulary gets another token file; (path, dtype, tokens).
    """
    dtype = token_dtype(tokenizer.vocab_size)
    h = hashlib.sha256(digest.encode())
    h.update(b"\0tokenizer\0")
    h.update(tokenizer.identity().encode("utf-8"))
    path = cache_dir("tokens") / f"{name}-{h.hexdigest()[:16]}.{dtype.name}.bin"
    if path.is_file():
        size = path.stat().st_size
        if size > 0 and size % dtype.itemsize == 0:
            return path, dtype, size // dtype.itemsize
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    if len(ids) == 0:
        raise UserError(f"{name}: the text holds no tokens.")
    write_tokens(path, ids, dtype)  # atomic: a reader never sees half a file
    return path, dtype, len(ids)


def _check_stream_args(dataset: str, block_size: int, mode: str) -> None:
    if mode not in ("streams", "random"):
        raise UserError(f"data.args.mode must be 'streams' or 'random' for {dataset}, not {mode!r}.")
    if block_size < 1:
        raise UserError(f"data.args.block_size must be at least 1 for {dataset}, got {block_size}.")


def _stream(dataset: str, split: str, tokens: np.ndarray, block_size: int, mode: str, hint: str = "") -> TokenStream:
    """A :class:`TokenStream` over ``tokens``, or a UserError naming the option to change when it is too short."""
    if len(tokens) < block_size + 1:
        raise UserError(
            f"{dataset}: the {split} split has {len(tokens)} tokens, fewer than data.args.block_size+1 = "
            f"{block_size + 1}; lower data.args.block_size{hint}."
        )
    return TokenStream(tokens, block_size, mode)


def _stream_info(tokenizer: Tokenizer, block_size: int, mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "vocab_size": tokenizer.vocab_size,
        "itos": tokenizer.itos,
        "tokenizer": tokenizer,
        "kind": "text",
        "block_size": block_size,
        "contiguous": mode == "streams",
        **extra,
    }


# ----------------------------------------------------------------------------- corpora


@register_dataset("tiny_shakespeare")
def tiny_shakespeare(
    data_dir: PathLike | None = None,
    block_size: int = 128,
    mode: str = "streams",
    val_fraction: float = 0.1,
    errors: str = "strict",
) -> DataBundle:
    """Tiny Shakespeare (Karpathy's char-rnn corpus, 1,115,394 characters, 65 distinct), character level.

    Read from ``<data root>/text/tinyshakespeare.txt``. As nanoGPT's ``shakespeare_char``,
    the first 90% of the characters train and the last 10% validate; there is no
    third part, so **the test split is the validation split** (``info["test_is_val"]``),
    and test numbers are validation numbers. The vocabulary is the file's characters.

    Args:
        data_dir: the data root (see :func:`archzoo.data.root.data_root`).
        block_size: tokens per row of a batch (default 128).
        mode: ``"streams"`` (contiguous rows, for recurrent models) or ``"random"`` (random windows).
        val_fraction: the held-out tail (default 0.1).
        errors: ``"strict"`` or ``"replace"`` (see :func:`read_text`).
    """
    _check_stream_args("tiny_shakespeare", block_size, mode)
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"data.val_fraction must be in (0, 1) for tiny_shakespeare, got {val_fraction}.")
    path = _data_file("tiny_shakespeare", data_dir, "text/tinyshakespeare.txt")
    text, digest = _read(path, errors)
    tok = CharTokenizer.train(text)
    file, dtype, n = cached_token_file("tiny_shakespeare", digest, tok, text)
    tokens = np.memmap(file, dtype=dtype, mode="r")
    cut = int(n * (1 - val_fraction))
    hint = " or raise data.val_fraction"
    train = _stream("tiny_shakespeare", "train", tokens[:cut], block_size, mode)
    val = _stream("tiny_shakespeare", "val", tokens[cut:], block_size, mode, hint)
    info = _stream_info(
        tok,
        block_size,
        mode,
        tokens={"train": cut, "val": n - cut, "test": n - cut},
        token_file=str(file),
        test_is_val=True,
    )
    return DataBundle(train, val, val, info)


#: The Penn Treebank files, Mikolov's names, by split.
PTB_FILES = {"train": "text/ptb/ptb.train.txt", "val": "text/ptb/ptb.valid.txt", "test": "text/ptb/ptb.test.txt"}


@register_dataset("ptb")
def ptb(
    data_dir: PathLike | None = None, block_size: int = 35, mode: str = "streams", vocab_order: str = "appearance"
) -> DataBundle:
    """The Penn Treebank, word level (Mikolov's preprocessing, as in Zaremba et al. 2014).

    ``<data root>/text/ptb/ptb.{train,valid,test}.txt``, each line read as
    ``line.split() + ["<eos>"]``; the vocabulary is the training file's words (it
    holds ``<unk>`` already) plus ``<eos>``: 10,000 tokens, numbered in order of
    first appearance. Token counts: 929,589 / 73,760 / 82,430.

    The validation and test streams start with one ``<eos>``, the context every
    line begins with, so that every one of their tokens is a target: perplexity
    over all 82,430 test tokens, as the LM literature reports it (with
    ``data.eval_batch_size=1``, one stream that drops no tail).

    Args:
        data_dir: the data root.
        block_size: tokens per row, the truncated-BPTT length (default 35, as Zaremba et al.).
        mode: ``"streams"`` or ``"random"``.
        vocab_order: ``"appearance"`` (default) or ``"frequency"``: ids numbered most frequent
            first, as an adaptive softmax head (``model.args.head=adaptive``) needs.
    """
    _check_stream_args("ptb", block_size, mode)
    if vocab_order not in ("appearance", "frequency"):
        raise UserError(f"data.args.vocab_order must be 'appearance' or 'frequency', got {vocab_order!r}.")
    read = {}
    for split, rel in PTB_FILES.items():
        read[split] = _read(_data_file("ptb", data_dir, rel), "strict")
    tok = WordTokenizer.train(read["train"][0], mode="ptb", unk=UNK, order=vocab_order)
    splits, counts = {}, {}
    for split, (text, digest) in read.items():
        file, dtype, n = cached_token_file(f"ptb-{split}", digest, tok, text)
        tokens = np.memmap(file, dtype=dtype, mode="r")
        if split != "train":  # small enough to hold in memory with the leading <eos>
            tokens = np.concatenate([np.array([tok.itos.index(EOS)], dtype=dtype), tokens])
        splits[split] = _stream("ptb", split, tokens, block_size, mode)
        counts[split] = n
    info = _stream_info(tok, block_size, mode, tokens=counts)
    return DataBundle(splits["train"], splits["val"], splits["test"], info)


@register_dataset("text_file")
def text_file(
    path: str | None = None,
    tokenizer: str = "char",
    block_size: int = 64,
    mode: str = "streams",
    val_fraction: float = 0.1,
    vocab_size: int | None = None,
    min_freq: int | None = None,
    errors: str = "strict",
) -> DataBundle:
    """Any UTF-8 text file as a token corpus, split chronologically.

    The first ``1 - 2 * val_fraction`` of the tokens train, the next ``val_fraction``
    validate and the last ``val_fraction`` test. A ``char`` vocabulary is the whole
    file's characters (a closed set, as python_chars); ``word`` and ``bpe``
    tokenizers are trained on the training part of the text only (words seen
    fewer than ``min_freq`` times there, and all words met later, become ``<unk>``;
    byte-level BPE has no unknowns).

    Args:
        path: the file (``data.args.path=...``); relative paths are from the working directory.
        tokenizer: ``"char"``, ``"word"`` (regex words, lower-cased) or ``"bpe"`` (byte-level).
        block_size: tokens per row (default 64).
        mode: ``"streams"`` or ``"random"``.
        val_fraction: the share of the tokens in each of val and test (default 0.1).
        vocab_size: BPE vocabulary size (default 1000; ``bpe`` only).
        min_freq: the fewest occurrences that keep a word (default 1; ``word`` only).
        errors: ``"strict"`` or ``"replace"`` (see :func:`read_text`).
    """
    if path is None or str(path) == "":
        raise UserError("text_file needs a file: pass data.args.path=FILE.")
    _check_stream_args("text_file", block_size, mode)
    if not 0.0 < val_fraction < 0.5:
        raise UserError(f"data.val_fraction must be in (0, 0.5) for text_file, got {val_fraction}.")
    if vocab_size is not None and tokenizer != "bpe":
        raise UserError(f"data.args.vocab_size applies to tokenizer=bpe only, not {tokenizer}.")
    if min_freq is not None and tokenizer != "word":
        raise UserError(f"data.args.min_freq applies to tokenizer=word only, not {tokenizer}.")
    p = Path(path).expanduser()
    text, digest = _read(p, errors)
    train_text = text[: int(len(text) * (1 - 2 * val_fraction))]
    options: dict[str, Any] = {}
    if tokenizer == "word":
        options = {"min_freq": min_freq or 1, "unk": UNK}
    elif tokenizer == "bpe":
        options = {"vocab_size": vocab_size or 1000}
    tok = make_tokenizer(tokenizer, text if tokenizer == "char" else train_text, **options)
    file, dtype, n = cached_token_file(f"text_file-{tokenizer}", digest, tok, text)
    tokens = np.memmap(file, dtype=dtype, mode="r")
    n_val = int(n * val_fraction)
    a, b = n - 2 * n_val, n - n_val
    hint = " or raise data.val_fraction"
    splits = [
        _stream("text_file", s, tokens[lo:hi], block_size, mode, hint if s != "train" else "")
        for s, lo, hi in (("train", 0, a), ("val", a, b), ("test", b, n))
    ]
    info = _stream_info(
        tok, block_size, mode, tokens={"train": a, "val": n_val, "test": n_val}, token_file=str(file), path=str(p)
    )
    return DataBundle(*splits, info=info)


def _largest_id(path: Path, dtype: np.dtype, chunk: int = 16 << 20) -> int:
    """The largest token id in a raw token file, read in chunks of ``chunk`` tokens (not mapped: no RSS is left)."""
    top = 0
    with open(path, "rb") as f:
        while True:
            part = np.fromfile(f, dtype=dtype, count=chunk)
            if not part.size:
                return top
            top = max(top, int(part.max()))


@register_dataset("token_file")
def token_file(
    path: str | None = None,
    vocab_size: int | None = None,
    dtype: str = "uint16",
    block_size: int = 64,
    mode: str = "streams",
    val_fraction: float = 0.01,
    windows_per_epoch: int | None = None,
) -> DataBundle:
    """An already tokenised corpus: a raw file of token ids (as :func:`~archzoo.data.splits.write_tokens`
    or nanoGPT's ``prepare.py`` writes them), memory-mapped and split chronologically.

    The first ``1 - 2 * val_fraction`` of the tokens train, the next ``val_fraction``
    validate and the last ``val_fraction`` test. The file is never read whole: each
    batch reads its windows, and the stream drops its mapped pages as it goes, so
    corpora larger than memory train with a bounded resident set (see
    :class:`~archzoo.data.splits.TokenStream`). The ids are checked once, in chunks,
    against ``vocab_size``. There is no tokenizer, so text cannot be sampled or read.

    Args:
        path: the file (``data.args.path=...``).
        vocab_size: the number of token ids; every id in the file must be below it.
        dtype: the integer type on disk: ``uint8``, ``uint16`` (default) or ``uint32``.
        block_size: tokens per row (default 64).
        mode: ``"streams"`` (default; contiguous rows for recurrent models) or ``"random"``.
        val_fraction: the share of the tokens in each of val and test (default 0.01).
        windows_per_epoch: random windows in a training epoch (``mode="random"``; default: as many as
            the training part holds without overlap).
    """
    if path is None or str(path) == "":
        raise UserError("token_file needs a file of token ids: pass data.args.path=FILE.")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise UserError(
            f"token_file needs data.args.vocab_size, the number of token ids (at least 2), got {vocab_size!r}."
        )
    if dtype not in ("uint8", "uint16", "uint32"):
        raise UserError(f"data.args.dtype must be uint8, uint16 or uint32 for token_file, got {dtype!r}.")
    _check_stream_args("token_file", block_size, mode)
    if not 0.0 < val_fraction < 0.5:
        raise UserError(f"data.val_fraction must be in (0, 0.5) for token_file, got {val_fraction}.")
    if windows_per_epoch is not None and (isinstance(windows_per_epoch, bool) or windows_per_epoch < 1):
        raise UserError(f"data.args.windows_per_epoch must be a positive number of windows, got {windows_per_epoch!r}.")
    if windows_per_epoch is not None and mode != "random":
        raise UserError("data.args.windows_per_epoch applies to mode=random only (streams read the corpus once).")
    p = Path(path).expanduser()
    dt = np.dtype(dtype)
    stream = TokenStream.from_file(p, dt, block_size, mode)  # checks that the file exists and fits the dtype
    top = _largest_id(p, dt)
    if top >= vocab_size:
        raise DataError(f"The token file {p} holds id {top}, not below data.args.vocab_size={vocab_size}.")
    tokens = stream.tokens
    n = len(tokens)
    n_val = int(n * val_fraction)
    a, b = n - 2 * n_val, n - n_val
    hint = " or raise data.val_fraction"
    splits = [
        _stream("token_file", s, tokens[lo:hi], block_size, mode, hint if s != "train" else "")
        for s, lo, hi in (("train", 0, a), ("val", a, b), ("test", b, n))
    ]
    if windows_per_epoch is not None:
        splits[0].windows_per_epoch = int(windows_per_epoch)
    info: dict[str, Any] = {
        "vocab_size": vocab_size,
        "kind": "text",
        "block_size": block_size,
        "contiguous": mode == "streams",
        "tokens": {"train": a, "val": n_val, "test": n_val},
        "token_file": str(p),
    }
    return DataBundle(*splits, info=info)


# ----------------------------------------------------------------------------- labelled text


def stratified_split(
    labels: Sequence[int], fraction: float, seed: int = SPLIT_SEED
) -> tuple[list[int], list[int], list[int]]:
    """Indices of (train, val, test): within each label, a shuffled ``fraction`` to test and one to val.

    Each class keeps at least one training example; the permutations come from one
    generator seeded with ``seed``, taken class by class in label order. Each split's
    indices are returned sorted.
    """
    g = torch.Generator().manual_seed(seed)
    by: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by.setdefault(int(y), []).append(i)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for y in sorted(by):
        idx = by[y]
        perm = [idx[j] for j in torch.randperm(len(idx), generator=g).tolist()]
        k = min(round(len(idx) * fraction), (len(idx) - 1) // 2)
        test += perm[:k]
        val += perm[k : 2 * k]
        train += perm[2 * k :]
    return sorted(train), sorted(val), sorted(test)


def _check_fraction(dataset: str, fraction: float) -> None:
    if not 0.0 < fraction < 0.5:
        raise UserError(f"data.val_fraction must be in (0, 0.5) for {dataset}, got {fraction}.")


@dataclass(frozen=True)
class SplitTexts:
    """The texts of each split of a labelled text dataset, in the order of the split's sequences.

    Not JSON, so a run's info.json leaves it out: the data rebuild it.
    """

    train: list[str]
    val: list[str]
    test: list[str]

    def split(self, name: str) -> list[str]:
        """The texts of ``train``, ``val`` or ``test``."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def _pad_unk(tok: Tokenizer) -> tuple[int, int]:
    """The padding and unknown ids of a tokenizer: ``<pad>``/``<unk>``, or BERT's ``[PAD]``/``[UNK]``."""
    if isinstance(tok, PretrainedTokenizer):
        return tok.special_id("[PAD]"), tok.special_id("[UNK]")
    return tok.itos.index(PAD), tok.itos.index(UNK)


def _special_ids(tok: Tokenizer) -> dict[str, int]:
    """``cls_id``, ``sep_id``, ``mask_id`` of a BERT-style tokenizer (none for the others)."""
    if not isinstance(tok, PretrainedTokenizer):
        return {}
    names = {"[CLS]": "cls_id", "[SEP]": "sep_id", "[MASK]": "mask_id"}
    return {names[t]: i for t, i in tok.specials.items() if t in names}


#: ``data.args.tokenizer`` values of the labelled text datasets beside their own (``word`` / ``char``).
SUBWORD_TOKENIZERS = ("wordpiece", "minilm")


def subword_tokenizer(kind: str, data_dir: PathLike | None = None, vocab_size: int = 4000) -> PretrainedTokenizer:
    """``"minilm"``: all-MiniLM-L6-v2's own ``tokenizer.json``; ``"wordpiece"``: BERT's WordPiece learnt
    on :func:`mlm_corpus_texts` (``vocab_size`` ids), cached so that the MLM pretraining and every
    fine-tuning run read the same vocabulary; any other value: a ``tokenizer.json`` file, or the
    ``tokenizer.json`` of an archzoo run directory."""
    if kind == "minilm":
        from archzoo.models.bert import minilm_folder

        return PretrainedTokenizer.from_file(minilm_folder() / "tokenizer.json")
    if kind == "wordpiece":
        texts = mlm_corpus_texts(data_dir)
        h = hashlib.sha256("\n".join(texts).encode("utf-8"))
        h.update(f"\0wordpiece\0{vocab_size}".encode())
        path = cache_dir("tokenizers") / f"wordpiece-{h.hexdigest()[:16]}.json"
        if path.is_file():
            tok = Tokenizer.load(path)
            assert isinstance(tok, PretrainedTokenizer)
            return tok
        tok = PretrainedTokenizer.train_wordpiece(texts, vocab_size)
        tok.save(path)  # atomic
        return tok
    p = Path(kind).expanduser()
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise UserError(
            f"data.args.tokenizer must be word/char, {', '.join(SUBWORD_TOKENIZERS)} or a tokenizer.json file, "
            f"and {kind!r} is none of these."
        )
    try:
        saved = Tokenizer.load(p)  # an archzoo run's tokenizer.json
    except UserError:
        return PretrainedTokenizer.from_file(p)  # a Hugging Face tokenizer.json (or a file that does not parse)
    if not isinstance(saved, PretrainedTokenizer):
        raise UserError(f"{p} holds a {saved.kind} tokenizer, not a subword one with [CLS] and [PAD].")
    return saved


def _labelled_bundle(
    texts: list[str],
    labels: list[int],
    classes: list[str],
    make: Callable[[list[str]], Tokenizer],
    fraction: float,
    bucket: bool,
    **extra: Any,
) -> DataBundle:
    """Split stratified, train the tokenizer on the training texts, and wrap each split as PaddedSequences."""
    parts = stratified_split(labels, fraction)
    tok = make([texts[i] for i in parts[0]])
    pad_id, unk_id = _pad_unk(tok)
    splits = []
    for j, idx in enumerate(parts):
        seqs = [torch.tensor(tok.encode(texts[i]) or [unk_id], dtype=torch.int64) for i in idx]
        y = torch.tensor([labels[i] for i in idx], dtype=torch.int64)
        splits.append(PaddedSequences(seqs, y, pad_id=pad_id, bucket=bucket and j == 0))
    info = {
        "num_classes": len(classes),
        "classes": classes,
        "vocab_size": tok.vocab_size,
        "pad_id": pad_id,
        **_special_ids(tok),
        "itos": tok.itos,
        "tokenizer": tok,
        "kind": "sequence",
        "sizes": {"train": len(parts[0]), "val": len(parts[1]), "test": len(parts[2])},
        "texts": SplitTexts(*([texts[i] for i in idx] for idx in parts)),
        **extra,
    }
    return DataBundle(*splits, info=info)


@register_dataset("names")
def names(
    data_dir: PathLike | None = None,
    ascii: bool = True,
    val_fraction: float = 0.1,
    bucket: bool = False,
    tokenizer: str = "char",
) -> DataBundle:
    """Surnames by language of origin (the PyTorch char-RNN classification tutorial's data), 18 classes.

    ``<data root>/text/names/<Language>.txt``, one name per line; the language is
    the file's stem, the classes are sorted by name. With ``ascii=True`` (default)
    each name is folded to ASCII as the tutorial does (NFD, combining marks
    dropped, only ``ascii_letters + " .,;'"`` kept; the tokenizer folds
    ``archzoo predict`` inputs the same way); ``ascii=False`` keeps the Unicode
    characters. Names are then deduplicated within each language (names left
    empty are dropped) and split stratified by language with a fixed seed,
    80/10/10 at the default ``val_fraction``; a name may still appear in two
    languages. Tokens are characters; id 0 is ``<pad>`` and 1 ``<unk>`` (a
    character not met in training).

    Args:
        data_dir: the data root.
        ascii: fold names to ASCII (default ``True``).
        val_fraction: the share of each language in each of val and test (default 0.1).
        bucket: batch names of similar length together in training.
        tokenizer: ``"char"`` (default), or a subword tokenizer for BERT-like models:
            ``"wordpiece"``, ``"minilm"`` or a ``tokenizer.json`` (:func:`subword_tokenizer`);
            each name is then ``[CLS] pieces [SEP]``.
    """
    _check_fraction("names", val_fraction)
    if tokenizer != "char":
        sub = subword_tokenizer(tokenizer, data_dir)
    folder = data_root(data_dir) / "text" / "names"
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        raise DataError(
            f"names needs the files {folder}/<Language>.txt, which do not exist; set ARCHZOO_DATA "
            "(or --data-dir or data.dir) to a data root that holds text/names/."
        )
    fold = "ascii" if ascii else None
    probe = CharTokenizer([], fold=fold)
    texts: list[str] = []
    labels: list[int] = []
    classes = [f.stem for f in files]
    for y, f in enumerate(files):
        lines = (probe.normalize(line.strip()) for line in read_text(f).strip().split("\n"))
        kept = list(dict.fromkeys(name for name in lines if name))
        texts += kept
        labels += [y] * len(kept)

    def make(train: list[str]) -> Tokenizer:
        if tokenizer != "char":
            return sub
        return CharTokenizer.train(train, specials=[PAD], unk=UNK, fold=fold)

    return _labelled_bundle(texts, labels, classes, make, val_fraction, bucket, ascii=ascii)


SMS_CLASSES = ["ham", "spam"]


@register_dataset("sms_spam")
def sms_spam(
    data_dir: PathLike | None = None,
    min_freq: int = 2,
    val_fraction: float = 0.1,
    dedupe: bool = True,
    bucket: bool = True,
    tokenizer: str = "word",
) -> DataBundle:
    """The SMS Spam Collection v.1 (Almeida et al. 2011): 5,574 English messages, ham or spam.

    ``<data root>/text/sms-spam/SMSSpamCollection.tsv``, each line split on its
    first tab into label and text. With ``dedupe`` (default) exact duplicate
    messages (403) are kept once, so no test message was trained on; the split is
    stratified by label with a fixed seed (80/10/10 at the default ``val_fraction``).
    Tokens are lower-cased words and punctuation marks; the vocabulary is the
    training split's words seen at least ``min_freq`` times, after ``<pad>`` (0)
    and ``<unk>`` (1).

    Args:
        data_dir: the data root.
        min_freq: fewest occurrences in training that keep a word (default 2).
        val_fraction: the share of each class in each of val and test (default 0.1).
        dedupe: keep each distinct message once (default ``True``).
        bucket: batch messages of similar length together in training (default ``True``).
        tokenizer: ``"word"`` (default), or a subword tokenizer for BERT-like models:
            ``"wordpiece"``, ``"minilm"`` or a ``tokenizer.json`` (:func:`subword_tokenizer`;
            ``min_freq`` then does not apply); each message is then ``[CLS] pieces [SEP]``.
    """
    _check_fraction("sms_spam", val_fraction)
    if min_freq < 1:
        raise UserError(f"data.args.min_freq must be at least 1, got {min_freq}.")
    sub = subword_tokenizer(tokenizer, data_dir) if tokenizer != "word" else None
    texts, labels = sms_messages(data_dir, dedupe)

    def make(train: list[str]) -> Tokenizer:
        if sub is not None:
            return sub
        return WordTokenizer.train(train, min_freq=min_freq, specials=[PAD], unk=UNK)

    return _labelled_bundle(texts, labels, list(SMS_CLASSES), make, val_fraction, bucket, dedupe=dedupe)


def sms_messages(data_dir: PathLike | None = None, dedupe: bool = True) -> tuple[list[str], list[int]]:
    """The messages of the SMS Spam Collection and their labels (0 ham, 1 spam), duplicates kept once with ``dedupe``."""
    path = _data_file("sms_spam", data_dir, "text/sms-spam/SMSSpamCollection.tsv")
    lines = read_text(path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    pairs: list[tuple[int, str]] = []
    for k, line in enumerate(lines, 1):
        label, tab, message = line.partition("\t")
        if not tab or label not in SMS_CLASSES:
            raise DataError(f"{path} line {k} is not 'ham' or 'spam', a tab and a message.")
        pairs.append((SMS_CLASSES.index(label), message))
    if dedupe:
        pairs = list(dict.fromkeys(pairs))
    return [m for _, m in pairs], [y for y, _ in pairs]


# ----------------------------------------------------------------------------- a corpus of sentences for MLM

MLM_CORPORA = ("ptb+sms", "ptb", "sms")


def _ptb_lines(data_dir: PathLike | None, split: str) -> list[str]:
    text = read_text(_data_file("ptb", data_dir, PTB_FILES[split]))
    return [line.strip() for line in text.split("\n") if line.strip()]


def mlm_corpus_texts(data_dir: PathLike | None = None, corpus: str = "ptb+sms") -> list[str]:
    """The training sentences of the MLM corpus: Penn Treebank training lines and/or the SMS training
    messages (of :func:`sms_spam`'s default split: never a validation or test message)."""
    if corpus not in MLM_CORPORA:
        raise UserError(f"data.args.corpus must be one of {', '.join(MLM_CORPORA)}, not {corpus!r}.")
    out: list[str] = []
    if "ptb" in corpus:
        out += _ptb_lines(data_dir, "train")
    if "sms" in corpus:
        texts, labels = sms_messages(data_dir)
        out += [texts[i] for i in stratified_split(labels, 0.1)[0]]
    return out


@register_dataset("mlm_corpus")
def mlm_corpus(
    data_dir: PathLike | None = None,
    corpus: str = "ptb+sms",
    tokenizer: str = "wordpiece",
    max_len: int = 64,
    bucket: bool = True,
) -> DataBundle:
    """Sentences for masked-language-model pretraining, as padded ``[CLS] pieces [SEP]`` sequences.

    Training: the Penn Treebank's training lines and the SMS Spam Collection's *training*
    messages (:func:`mlm_corpus_texts`); validation and test: PTB's validation and test lines.
    Each sentence is cut to ``max_len`` ids (its ``[SEP]`` kept last).

    Args:
        data_dir: the data root.
        corpus: ``"ptb+sms"`` (default), ``"ptb"`` or ``"sms"`` (the training part).
        tokenizer: ``"wordpiece"`` (default), ``"minilm"`` or a ``tokenizer.json`` (:func:`subword_tokenizer`).
        max_len: ids per sentence at most (default 64).
        bucket: batch sentences of similar length together in training (default ``True``).
    """
    if max_len < 3:
        raise UserError(f"data.args.max_len must be at least 3, got {max_len}.")
    tok = subword_tokenizer(tokenizer, data_dir)
    pad_id, _ = _pad_unk(tok)
    texts = {
        "train": mlm_corpus_texts(data_dir, corpus),
        "val": _ptb_lines(data_dir, "val"),
        "test": _ptb_lines(data_dir, "test"),
    }
    splits = []
    for name, lines in texts.items():
        encs = tok.hf.encode_batch(lines)
        seqs = []
        for e in encs:
            ids = e.ids
            if len(ids) > max_len:
                ids = ids[: max_len - 1] + ids[-1:]  # keep [SEP] last
            seqs.append(torch.tensor(ids, dtype=torch.int64))
        splits.append(PaddedSequences(seqs, None, pad_id=pad_id, bucket=bucket and name == "train"))
    info = {
        "vocab_size": tok.vocab_size,
        "pad_id": pad_id,
        **_special_ids(tok),
        "special_ids": sorted(tok.specials.values()),
        "tokenizer": tok,
        "kind": "sequence",
        "sizes": {k: len(v) for k, v in texts.items()},
        "corpus": corpus,
    }
    return DataBundle(*splits, info=info)
