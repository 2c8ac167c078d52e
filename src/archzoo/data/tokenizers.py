"""Tokenizers: text to token ids and back, saved as JSON beside a run.

Three kinds share one interface (:class:`Tokenizer`): ``encode(text) -> list[int]``,
``decode(ids) -> str``, ``vocab_size``, ``itos`` (the token string of each id),
``save(path)`` (JSON) and the classmethod ``load(path)``.

* :class:`CharTokenizer`: one token per character (Karpathy's char-rnn), with an
  optional unknown token and an optional fold to ASCII (the PyTorch names
  tutorial's ``unicodedata.normalize("NFD")`` and letter filter).
* :class:`WordTokenizer`: words by a regular expression, rare words (below
  ``min_freq``) mapped to an unknown token; or the Penn Treebank reading
  (``mode="ptb"``): each line is ``line.split() + ["<eos>"]`` over the corpus'
  own vocabulary, exactly as Zaremba et al.'s and pytorch/examples' readers do.
* :class:`BPETokenizer`: byte-level byte-pair encoding (Sennrich et al. 2016,
  https://arxiv.org/abs/1508.07909; GPT-2's byte-level variant, Radford et al.
  2019) trained with Hugging Face ``tokenizers``: every byte is a token, so no
  text is unknown.
* :class:`PretrainedTokenizer`: any ``tokenizers`` ``tokenizer.json`` (MiniLM's
  WordPiece, :meth:`PretrainedTokenizer.from_file`), or a BERT-style WordPiece
  trained here (:meth:`PretrainedTokenizer.train_wordpiece`); its special tokens
  (``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]``, ``[UNK]``) are known by id.

A dataset puts its tokenizer into ``info["tokenizer"]``; the engine saves it as
``tokenizer.json`` in the run directory and reloads it with the run, so
``archzoo predict`` and ``archzoo sample`` read text as training did.
:meth:`Tokenizer.identity` (the JSON) keys the cached token files.
"""

from __future__ import annotations

import json
import os
import re
import string
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from archzoo.errors import UserError

PathLike = str | os.PathLike[str]

#: The characters the PyTorch names tutorial keeps after folding to ASCII.
ASCII_NAME_CHARS = string.ascii_letters + " .,;'"

UNK = "<unk>"
PAD = "<pad>"
EOS = "<eos>"

#: Words and single punctuation marks (the default of :class:`WordTokenizer`).
WORD_PATTERN = r"\w+|[^\w\s]"

FOLDS = ("ascii",)


def fold_ascii(text: str, keep: str = ASCII_NAME_CHARS) -> str:
    """``text`` decomposed (NFD), without combining marks, keeping only the characters in ``keep``."""
    allowed = set(keep)
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn" and c in allowed)


def _shown(items: Iterable[str], limit: int = 20) -> str:
    items = list(items)
    return ", ".join(repr(c) for c in items[:limit]) + (", ..." if len(items) > limit else "")


class Tokenizer(ABC):
    """The shared interface; subclasses set :attr:`kind` and implement encode, decode and the JSON fields."""

    kind: ClassVar[str] = ""
    #: What goes between two pieces of decoded text (a prompt and its continuation): a space for words.
    separator: ClassVar[str] = ""
    itos: list[str]

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON fields that rebuild this tokenizer (:meth:`from_dict`)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """The tokenizer that :meth:`to_dict` wrote."""

    def identity(self) -> str:
        """The canonical JSON of this tokenizer: equal for two tokenizers that encode alike."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    def save(self, path: PathLike) -> None:
        """Write the tokenizer as JSON (atomically)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: PathLike) -> Tokenizer:
        """Read a tokenizer that :meth:`save` wrote, of whichever kind the file names."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path} is not a readable tokenizer file ({e}).") from None
        kinds = {k.kind: k for k in (CharTokenizer, WordTokenizer, BPETokenizer, PretrainedTokenizer)}
        if not isinstance(d, dict) or d.get("type") not in kinds:
            raise UserError(f"{path} is not a tokenizer file: its 'type' is not one of {', '.join(kinds)}.")
        out = kinds[d["type"]].from_dict(d)
        if cls is not Tokenizer and not isinstance(out, cls):
            raise UserError(f"{path} holds a {d['type']} tokenizer, not a {cls.kind} one.")
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.identity() == other.identity()

    def __hash__(self) -> int:
        return hash(self.identity())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class CharTokenizer(Tokenizer):
    """One token per character.

    Args:
        itos: the token string of each id (specials such as ``"<pad>"`` included).
        unk: the unknown token, one of ``itos``; without one, encoding a character
            outside the vocabulary is a :class:`UserError` naming the characters.
        fold: ``"ascii"`` folds text to :data:`ASCII_NAME_CHARS` before encoding
            (:func:`fold_ascii`), or ``None`` (default) to keep it as it is.
    """

    kind = "char"

    def __init__(self, itos: Sequence[str], unk: str | None = None, fold: str | None = None) -> None:
        self.itos = list(itos)
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("a vocabulary must not repeat a token")
        if unk is not None and unk not in self.itos:
            raise ValueError(f"the unknown token {unk!r} is not in the vocabulary")
        if fold is not None and fold not in FOLDS:
            raise UserError(f"The character fold must be one of {', '.join(FOLDS)} or none, not {fold!r}.")
        self.unk, self.fold = unk, fold
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @classmethod
    def train(
        cls, texts: str | Iterable[str], specials: Sequence[str] = (), unk: str | None = None, fold: str | None = None
    ) -> CharTokenizer:
        """The specials (and ``unk``) first, then the sorted distinct characters of ``texts``."""
        texts = [texts] if isinstance(texts, str) else texts
        chars: set[str] = set()
        for t in texts:
            chars.update(fold_ascii(t) if fold == "ascii" else t)
        head = list(dict.fromkeys([*specials, *([unk] if unk else [])]))
        return cls(head + sorted(chars - set(head)), unk=unk, fold=fold)

    def normalize(self, text: str) -> str:
        return fold_ascii(text) if self.fold == "ascii" else text

    def encode(self, text: str) -> list[int]:
        text = self.normalize(text)
        stoi = self.stoi
        if self.unk is not None:
            u = stoi[self.unk]
            return [stoi.get(c, u) for c in text]
        try:
            return [stoi[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in stoi})
            raise UserError(
                f"The text has {len(unknown)} character(s) outside the vocabulary: {_shown(unknown)}."
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "itos": self.itos, "unk": self.unk, "fold": self.fold}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        return cls(d["itos"], unk=d.get("unk"), fold=d.get("fold"))


class WordTokenizer(Tokenizer):
    """Words as tokens.

    ``mode="regex"`` (default) finds the tokens with ``re.findall(pattern, text)``
    (lower-cased first when ``lower``) and decodes them joined by spaces.
    ``mode="ptb"`` reads the Penn Treebank way: each line (``text.split("\\n")``,
    without the empty piece after a final newline) becomes ``line.split() + ["<eos>"]``;
    decoding joins words by spaces and writes ``<eos>`` as a newline.

    Args:
        itos: the token string of each id.
        unk: the token for words outside the vocabulary, or ``None`` (then such a
            word is a :class:`UserError`).
        mode: ``"regex"`` or ``"ptb"``.
        pattern: the regular expression of a token (regex mode).
        lower: lower-case before matching (regex mode, default ``True``).
    """

    kind = "word"
    separator = " "
    MODES = ("regex", "ptb")

    def __init__(
        self,
        itos: Sequence[str],
        unk: str | None = UNK,
        mode: str = "regex",
        pattern: str = WORD_PATTERN,
        lower: bool = True,
    ) -> None:
        if mode not in self.MODES:
            raise UserError(f"The word tokenizer mode must be one of {', '.join(self.MODES)}, not {mode!r}.")
        self.itos = list(itos)
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("a vocabulary must not repeat a token")
        if unk is not None and unk not in self.itos:
            raise ValueError(f"the unknown token {unk!r} is not in the vocabulary")
        self.unk, self.mode, self.pattern, self.lower = unk, mode, pattern, lower
        self._re = re.compile(pattern)
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def words(self, text: str) -> list[str]:
        """The token strings of ``text`` before the vocabulary lookup."""
        if self.mode == "ptb":
            return ptb_words(text)
        return self._re.findall(text.lower() if self.lower else text)

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        min_freq: int = 1,
        specials: Sequence[str] = (),
        unk: str | None = UNK,
        mode: str = "regex",
        pattern: str = WORD_PATTERN,
        lower: bool = True,
        max_size: int | None = None,
        order: str = "appearance",
    ) -> WordTokenizer:
        """Build the vocabulary of ``texts``.

        Regex mode: the specials and ``unk`` first, then the words seen at least
        ``min_freq`` times, most frequent first (ties alphabetically), at most
        ``max_size`` tokens in all. PTB mode: every word in order of first
        appearance (``<eos>`` included; the corpus has its own ``<unk>``), as
        pytorch/examples' ``Dictionary`` numbers them, or with ``order="frequency"``
        most frequent first (ties in order of first appearance), the order an
        adaptive softmax's clusters need; ``min_freq`` still applies.
        """
        if order not in ("appearance", "frequency"):
            raise UserError(f"The word tokenizer's order must be 'appearance' or 'frequency', got {order!r}.")
        if min_freq < 1:
            raise UserError(f"The word tokenizer's min_freq must be at least 1, got {min_freq}.")
        probe = cls([], unk=None, mode=mode, pattern=pattern, lower=lower)
        texts = [texts] if isinstance(texts, str) else texts
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(probe.words(t))
        if mode == "ptb":
            words = [w for w, c in counts.items() if c >= min_freq]  # Counter keeps first-seen order
            if order == "frequency":
                words.sort(key=lambda w: -counts[w])  # stable: ties keep first-seen order
            if unk is not None and unk not in words:
                words.append(unk)
            return cls(words, unk=unk if unk in words else None, mode=mode, pattern=pattern, lower=lower)
        head = list(dict.fromkeys([*specials, *([unk] if unk else [])]))
        ranked = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in head), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(head))]
        return cls(head + ranked, unk=unk, mode=mode, pattern=pattern, lower=lower)

    def encode(self, text: str) -> list[int]:
        words, stoi = self.words(text), self.stoi
        if self.unk is not None:
            u = stoi[self.unk]
            return [stoi.get(w, u) for w in words]
        try:
            return [stoi[w] for w in words]
        except KeyError:
            unknown = sorted({w for w in words if w not in stoi})
            raise UserError(f"The text has {len(unknown)} word(s) outside the vocabulary: {_shown(unknown)}.") from None

    def decode(self, ids: Sequence[int]) -> str:
        if self.mode == "ptb":
            return " ".join(self.itos[i] for i in ids).replace(f" {EOS} ", "\n").replace(f" {EOS}", "\n")
        return " ".join(self.itos[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "mode": self.mode,
            "itos": self.itos,
            "unk": self.unk,
            "pattern": self.pattern,
            "lower": self.lower,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        return cls(
            d["itos"],
            unk=d.get("unk"),
            mode=d.get("mode", "regex"),
            pattern=d.get("pattern", WORD_PATTERN),
            lower=d.get("lower", True),
        )


def ptb_words(text: str) -> list[str]:
    """``line.split() + ["<eos>"]`` for each line of ``text`` (a final newline ends the last line)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[str] = []
    for line in lines:
        out.extend(line.split())
        out.append(EOS)
    return out


class BPETokenizer(Tokenizer):
    """Byte-level BPE, held by a Hugging Face ``tokenizers.Tokenizer``.

    The text is cut into words with GPT-2's byte-level pre-tokenizer (each byte
    mapped to a printable character, so every string is encodable) and merged
    by the learnt merges; the byte-level decoder turns ids back into the exact text.

    Args:
        hf: a trained ``tokenizers.Tokenizer`` with a BPE model.
    """

    kind = "bpe"

    def __init__(self, hf: Any) -> None:
        self.hf = hf
        vocab = hf.get_vocab(with_added_tokens=True)
        itos = [""] * len(vocab)
        for tok, i in vocab.items():
            itos[i] = tok
        self.itos = itos

    @classmethod
    def train(cls, texts: str | Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> BPETokenizer:
        """Learn merges on ``texts`` until the vocabulary (256 bytes + merges) holds ``vocab_size`` tokens."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise UserError(f"A byte-level BPE vocabulary needs more than the 256 bytes; got vocab_size={vocab_size}.")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        texts = [texts] if isinstance(texts, str) else list(texts)
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "hf": json.loads(self.hf.to_str())}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(json.dumps(d["hf"])))


#: BERT's special tokens, in the order :meth:`PretrainedTokenizer.train_wordpiece` numbers them.
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class PretrainedTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers`` tokenizer read from its ``tokenizer.json`` (or trained as BERT's).

    ``encode`` adds the file's special tokens (BERT's template: ``[CLS] text [SEP]``) and
    truncates as the file says; padding is the data's business, so the file's padding is
    turned off. The ids of ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[MASK]`` and ``[UNK]`` are
    :attr:`specials` (a name absent from the vocabulary is left out).

    Args:
        hf: a ``tokenizers.Tokenizer``.
    """

    kind = "pretrained"
    separator = " "

    def __init__(self, hf: Any) -> None:
        hf.no_padding()
        self.hf = hf
        vocab = hf.get_vocab(with_added_tokens=True)
        itos = [""] * (max(vocab.values()) + 1)
        for tok, i in vocab.items():
            itos[i] = tok
        self.itos = itos
        #: ``{"[CLS]": 101, ...}``: the special tokens this vocabulary has.
        self.specials = {t: vocab[t] for t in BERT_SPECIALS if t in vocab}

    def special_id(self, token: str) -> int:
        """The id of the special ``token`` (``"[MASK]"``); a UserError if the vocabulary lacks it."""
        if token not in self.specials:
            raise UserError(f"The tokenizer has no {token} token, which this model needs.")
        return self.specials[token]

    @classmethod
    def from_file(cls, path: PathLike) -> PretrainedTokenizer:
        """Read a ``tokenizers`` ``tokenizer.json``; a file that does not parse is a one-sentence UserError."""
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(path)
        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for every parse error
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:100]
            raise UserError(f"{path} is not a tokenizer.json that the tokenizers library can read ({first}).") from None
        return cls(hf)

    @classmethod
    def train_wordpiece(
        cls, texts: Iterable[str], vocab_size: int = 4000, max_length: int = 128
    ) -> PretrainedTokenizer:
        """BERT's uncased WordPiece (Wu et al. 2016; Devlin et al. 2019) learnt on ``texts``.

        Lower-cased, accents stripped, split on whitespace and punctuation; ids 0-4 are
        :data:`BERT_SPECIALS`; ``encode`` gives ``[CLS] ... [SEP]``, at most ``max_length`` ids.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

        if vocab_size <= len(BERT_SPECIALS) + 26:
            raise UserError(f"A WordPiece vocabulary needs more than the specials and letters; got {vocab_size}.")
        hf = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
        hf.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
        hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        hf.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=list(BERT_SPECIALS), show_progress=False
        )
        hf.train_from_iterator(list(texts), trainer=trainer)
        cls_id, sep_id = hf.token_to_id("[CLS]"), hf.token_to_id("[SEP]")
        hf.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        hf.enable_truncation(max_length)
        return cls(hf)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "hf": json.loads(self.hf.to_str())}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PretrainedTokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        try:
            hf = HFTokenizer.from_str(json.dumps(d["hf"]))
        except Exception as e:  # noqa: BLE001 - as from_file
            raise UserError(f"The saved tokenizer does not parse ({str(e).splitlines()[0][:100]}).") from None
        return cls(hf)


def make_tokenizer(kind: str, texts: str | Iterable[str], **options: Any) -> Tokenizer:
    """Train a tokenizer of ``kind`` (``char``, ``word`` or ``bpe``) on ``texts``."""
    makers = {"char": CharTokenizer.train, "word": WordTokenizer.train, "bpe": BPETokenizer.train}
    if kind not in makers:
        raise UserError(f"data.args.tokenizer must be one of {', '.join(makers)}, not {kind!r}.")
    return makers[kind](texts, **options)
