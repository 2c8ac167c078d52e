r"""Sequence-to-sequence datasets: four synthetic character tasks and English→French sentence pairs.

Every dataset yields :class:`~archzoo.data.splits.PaddedSequences` with targets:
a batch's ``x`` holds source ids, ``y`` target ids ending in ``<eos>``. The
vocabularies reserve ``<pad>`` = 0, ``<bos>`` = 1 and ``<eos>`` = 2 (and
``<unk>`` = 3 for words), and ``info`` names them (``src_itos``, ``tgt_itos``,
``src_vocab_size``, ``tgt_vocab_size``, ``pad_id``, ``bos_id``, ``eos_id``,
``level`` = ``"char"`` or ``"word"``), so a model and a task build from it.

The synthetic tasks come from a fixed seed (:data:`DATA_SEED`), the same data
everywhere and independent of the run's seed:

* ``reverse``: a random string over ``symbols`` letters → the same string reversed;
* ``sort``: a random string → its letters in alphabetical order;
* ``addition``: ``"123+45"`` → ``"168"`` for two numbers below ``max_value``;
  10% of all pairs are held out for validation and test and never trained on
  (listed and shuffled up to 10⁷ pairs, chosen by a fixed hash above);
* ``dates``: a date written in one of many human formats → ISO 8601 ``YYYY-MM-DD``.
  Only formats that name the month in words or put the year first appear, so no
  input can be read two ways (``03/04/2020`` is never shown).

``fra_eng`` reads ``<data root>/text/fra-eng/fra-eng.zip`` (Tatoeba pairs, ManyThings
release) in place, normalises both sides as the PyTorch translation tutorial does
and keeps its classic subset (both sides under 10 tokens, English beginning with
"i am", "he is", "you are", ... ), about 11.8k pairs; 10% of the English
sentences, with all their translations, are held out.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
import re
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import torch

from archzoo.data.root import data_root
from archzoo.data.splits import DataBundle, PaddedSequences
from archzoo.errors import UserError
from archzoo.registry import register_dataset

#: The seed of every synthetic corpus: the data do not change with the run's seed.
DATA_SEED = 0

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS]


# ----------------------------------------------------------------------------- vocabularies and bundles


def char_vocab(texts: Sequence[str]) -> list[str]:
    """``<pad>``, ``<bos>``, ``<eos>`` and then every character of ``texts``, sorted."""
    return SPECIALS + sorted({c for t in texts for c in t})


def encode(tokens: Sequence[str], itos: Sequence[str] | dict[str, int], eos: bool = False) -> list[int]:
    """Ids of ``tokens`` (characters or words); unknown ones map to ``<unk>`` (an error if there is none).

    ``itos`` is the vocabulary, or its inverse ``{token: id}`` (faster for many calls).
    """
    stoi = itos if isinstance(itos, dict) else {s: i for i, s in enumerate(itos)}
    unk = stoi.get(UNK)
    out = []
    for t in tokens:
        i = stoi.get(t, unk)
        if i is None:
            raise UserError(f"The symbol {t!r} is not in this run's vocabulary.")
        out.append(i)
    return out + [stoi[EOS]] if eos else out


def decode(ids: Sequence[int], itos: Sequence[str], level: str = "char") -> str:
    """The text of ``ids`` up to the first ``<eos>``, without special tokens (words joined by spaces)."""
    words = []
    for i in ids:
        s = itos[int(i)]
        if s == EOS:
            break
        if s not in (PAD, BOS):
            words.append(s)
    return (" " if level == "word" else "").join(words)


def _split_of(
    pairs: Sequence[tuple[Any, Any]], src_itos: list[str], tgt_itos: list[str], bucket: bool
) -> PaddedSequences:
    src_stoi = {s: i for i, s in enumerate(src_itos)}
    tgt_stoi = {s: i for i, s in enumerate(tgt_itos)}
    src = [torch.tensor(encode(s, src_stoi)) for s, _ in pairs]
    tgt = [torch.tensor(encode(t, tgt_stoi, eos=True)) for _, t in pairs]
    return PaddedSequences(src, pad_id=0, targets=tgt, target_pad_id=0, bucket=bucket)


def pair_bundle(
    train: Sequence[tuple[Any, Any]],
    val: Sequence[tuple[Any, Any]],
    test: Sequence[tuple[Any, Any]] | None,
    src_itos: list[str],
    tgt_itos: list[str],
    level: str = "char",
    bucket: bool = False,
    **extra: Any,
) -> DataBundle:
    """A :class:`DataBundle` of (source, target) pairs of strings (characters) or word lists."""
    for name, part in (("train", train), ("validation", val)):
        if not part:
            raise UserError(f"The {name} split has no pairs; raise the dataset's size.")
    info = {
        "kind": "seq2seq",
        "level": level,
        "src_itos": src_itos,
        "tgt_itos": tgt_itos,
        "src_vocab_size": len(src_itos),
        "tgt_vocab_size": len(tgt_itos),
        "pad_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "max_src_len": max(len(s) for part in (train, val, test or []) for s, _ in part),
        "max_tgt_len": max(len(t) + 1 for part in (train, val, test or []) for _, t in part),
        # one fixed validation source, whose attention a task may draw after each epoch
        "probe": (" " if level == "word" else "").join(val[0][0]),
        **extra,
    }
    return DataBundle(
        _split_of(train, src_itos, tgt_itos, bucket),
        _split_of(val, src_itos, tgt_itos, False),
        _split_of(test, src_itos, tgt_itos, False) if test else None,
        info,
    )


def _three_way(pairs: list[tuple[str, str]], val: int, test: int) -> tuple[list, list, list]:
    return pairs[val + test :], pairs[:val], pairs[val : val + test]


def _unique_strings(draw: Callable[[random.Random], str], n: int, rng: random.Random) -> list[str]:
    seen: dict[str, None] = {}
    tries = 0
    while len(seen) < n:
        seen[draw(rng)] = None
        tries += 1
        if tries > 50 * n:
            raise UserError(f"Could not draw {n} distinct sequences; lower n or widen the lengths.")
    return list(seen)


def _check_sizes(n: int, val: int, test: int, what: str) -> None:
    if min(n, val, test) < 1 or val + test >= n:
        raise UserError(f"{what}: n={n} must exceed n_val + n_test = {val + test}, each at least 1.")


# ----------------------------------------------------------------------------- reverse and sort


def _letter_task(
    rule: Callable[[str], str], symbols: int, min_len: int, max_len: int, n: int, n_val: int, n_test: int, bucket: bool
) -> DataBundle:
    if not 2 <= symbols <= 26:
        raise UserError(f"data.args.symbols must be in [2, 26], got {symbols}.")
    if not 1 <= min_len <= max_len:
        raise UserError(f"Need 1 <= min_len <= max_len, got {min_len} and {max_len}.")
    _check_sizes(n, n_val, n_test, "the letter tasks")
    letters = "abcdefghijklmnopqrstuvwxyz"[:symbols]
    rng = random.Random(DATA_SEED)

    def draw(r: random.Random) -> str:
        return "".join(r.choice(letters) for _ in range(r.randint(min_len, max_len)))

    inputs = _unique_strings(draw, n, rng)
    pairs = [(s, rule(s)) for s in inputs]
    train, val, test = _three_way(pairs, n_val, n_test)
    itos = SPECIALS + list(letters)
    return pair_bundle(train, val, test, itos, itos, bucket=bucket)


@register_dataset("reverse")
def reverse(
    n: int = 12000, n_val: int = 1000, n_test: int = 1000, min_len: int = 5, max_len: int = 20, symbols: int = 10,
    bucket: bool = False,
) -> DataBundle:  # fmt: skip
    """Random strings over the first ``symbols`` letters, of lengths ``min_len``..``max_len``, reversed.

    Args:
        n: distinct strings over all splits (default 12000).
        n_val: of them for validation (default 1000).
        n_test: for the test split (default 1000).
        min_len: shortest string (default 5).
        max_len: longest string (default 20).
        symbols: alphabet size (default 10, ``a``..``j``).
        bucket: batch strings of similar length together in training.
    """
    return _letter_task(lambda s: s[::-1], symbols, min_len, max_len, n, n_val, n_test, bucket)


@register_dataset("sort")
def sort(
    n: int = 12000, n_val: int = 1000, n_test: int = 1000, min_len: int = 5, max_len: int = 20, symbols: int = 10,
    bucket: bool = False,
) -> DataBundle:  # fmt: skip
    """Random strings over the first ``symbols`` letters → their letters sorted (arguments as :func:`reverse`)."""
    return _letter_task(lambda s: "".join(sorted(s)), symbols, min_len, max_len, n, n_val, n_test, bucket)


# ----------------------------------------------------------------------------- addition


#: Up to this many pairs (numbers below 3162) all of them are listed and exactly 10% held out.
LISTED_PAIRS = 10_000_000


def addition_pairs(max_value: int = 1000, held_out: float = 0.1) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """All pairs ``(a, b)`` with ``0 <= a, b < max_value``, cut into (trainable, held out) by a fixed shuffle."""
    perm = torch.randperm(max_value * max_value, generator=torch.Generator().manual_seed(DATA_SEED))
    pairs = list(zip((perm // max_value).tolist(), (perm % max_value).tolist(), strict=True))  # index a * max + b
    k = int(round(len(pairs) * held_out))
    return pairs[k:], pairs[:k]


def is_held_out(a: int, b: int, max_value: int, held_out: float = 0.1) -> bool:
    """Whether the pair ``(a, b)`` is held out when there are too many pairs to list (a fixed hash).

    The pair's index ``a * max_value + b`` goes through SplitMix64's mixer; the pair is held
    out when the result falls in the lowest ``held_out`` share of the 64-bit range.
    """
    m = (1 << 64) - 1
    z = (a * max_value + b + DATA_SEED + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return (z ^ (z >> 31)) < held_out * 2.0**64


def sampled_addition_pairs(
    max_value: int, n_train: int, n_held: int, held_out: float = 0.1
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``n_train`` distinct trainable and ``n_held`` distinct held-out pairs drawn at random (fixed seed).

    For ``max_value**2`` above :data:`LISTED_PAIRS`: :func:`is_held_out` decides each pair's side.
    """
    rng = random.Random(DATA_SEED)
    train: dict[tuple[int, int], None] = {}
    held: dict[tuple[int, int], None] = {}
    while len(train) < n_train or len(held) < n_held:
        p = (rng.randrange(max_value), rng.randrange(max_value))
        side, want = (held, n_held) if is_held_out(*p, max_value, held_out) else (train, n_train)
        if len(side) < want:
            side[p] = None
    return list(train), list(held)


@register_dataset("addition")
def addition(
    n_train: int = 100000, n_val: int = 2000, n_test: int = 2000, max_value: int = 1000, bucket: bool = False
) -> DataBundle:
    """``"123+45"`` → ``"168"`` for numbers below ``max_value``; 10% of all pairs never trained on.

    Up to :data:`LISTED_PAIRS` pairs, a fixed shuffle of all ``max_value**2`` pairs holds out
    exactly 10% for validation and test, and training draws ``n_train`` of the other 90%. Above
    (five-digit numbers, ``max_value=100000``), a fixed hash of each pair holds out 10% of them
    (:func:`is_held_out`) and the splits are drawn at random from either side.

    Args:
        n_train: training pairs (default 100000, at most 90% of all pairs).
        n_val: validation pairs from the held-out ones (default 2000).
        n_test: test pairs from the held-out ones (default 2000).
        max_value: numbers are below it (default 1000).
        bucket: batch sums of similar length together in training.
    """
    if max_value < 2:
        raise UserError(f"data.args.max_value must be at least 2, got {max_value}.")
    if min(n_train, n_val, n_test) < 1:
        raise UserError(f"addition needs n_train, n_val and n_test of at least 1, got {n_train}, {n_val}, {n_test}.")
    total = max_value * max_value
    if total <= LISTED_PAIRS:
        trainable, held = addition_pairs(max_value)
    elif n_train + n_val + n_test > total // 20:  # drawing at random stays quick below 5% of the pairs
        raise UserError(f"addition with max_value={max_value} draws at most {total // 20} pairs in all.")
    else:
        trainable, held = sampled_addition_pairs(max_value, n_train, n_val + n_test)
    if n_train > len(trainable) or n_val + n_test > len(held):
        raise UserError(
            f"addition has {len(trainable)} trainable and {len(held)} held-out pairs; "
            f"n_train={n_train}, n_val + n_test = {n_val + n_test} do not fit."
        )

    def text(p: tuple[int, int]) -> tuple[str, str]:
        return f"{p[0]}+{p[1]}", str(p[0] + p[1])

    itos = SPECIALS + list("0123456789+")
    return pair_bundle(
        [text(p) for p in trainable[:n_train]],
        [text(p) for p in held[:n_val]],
        [text(p) for p in held[n_val : n_val + n_test]],
        itos, itos, bucket=bucket,
    )  # fmt: skip


# ----------------------------------------------------------------------------- dates


def _ordinal(d: int) -> str:
    suffix = "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


def _date_formats() -> list[Callable[[dt.date], str]]:
    """Writers of a date that name the month in words or put the year first (each reads one way)."""
    months, abbr = list(calendar.month_name), list(calendar.month_abbr)
    days = list(calendar.day_name)

    def m(x: dt.date) -> str:
        return months[x.month]

    def a(x: dt.date) -> str:
        return abbr[x.month]

    return [
        lambda x: f"{x.day} {m(x)} {x.year}",  # 3 March 2021
        lambda x: f"{x.day:02d} {m(x)} {x.year}",  # 03 March 2021
        lambda x: f"{m(x)} {x.day}, {x.year}",  # March 3, 2021
        lambda x: f"{m(x)} {_ordinal(x.day)}, {x.year}",  # March 3rd, 2021
        lambda x: f"{_ordinal(x.day)} of {m(x)} {x.year}",  # 3rd of March 2021
        lambda x: f"the {_ordinal(x.day)} of {m(x)}, {x.year}",  # the 3rd of March, 2021
        lambda x: f"{x.day} {a(x)} {x.year}",  # 3 Mar 2021
        lambda x: f"{a(x)} {x.day}, {x.year}",  # Mar 3, 2021
        lambda x: f"{x.day}-{a(x)}-{x.year}",  # 3-Mar-2021
        lambda x: f"{x.day} {m(x).lower()} {x.year}",  # 3 march 2021
        lambda x: f"{m(x).upper()} {x.day} {x.year}",  # MARCH 3 2021
        lambda x: f"{a(x).lower()} {x.day:02d} {x.year}",  # mar 03 2021
        lambda x: f"{days[x.weekday()]}, {m(x)} {x.day}, {x.year}",  # Wednesday, March 3, 2021
        lambda x: f"{days[x.weekday()][:3]} {x.day} {a(x)} {x.year}",  # Wed 3 Mar 2021
        lambda x: f"{x.year} {m(x)} {x.day}",  # 2021 March 3
        lambda x: f"{x.year}/{x.month:02d}/{x.day:02d}",  # 2021/03/03
        lambda x: f"{x.year}.{x.month}.{x.day}",  # 2021.3.3
        lambda x: f"{x.year}{x.month:02d}{x.day:02d}",  # 20210303
    ]


#: How a range of two dates is written; the ISO 8601 interval is ``start/end``.
RANGE_FORMS = ("from {} to {}", "{} - {}", "between {} and {}", "{} until {}")


def date_pairs(n: int, first_year: int = 1900, last_year: int = 2099, ranges: bool = False) -> list[tuple[str, str]]:
    """``n`` distinct (human-written date, ISO date) pairs, from random days and formats (fixed seed).

    With ``ranges`` each input is a range of two dates, each in its own format and joined
    by one of :data:`RANGE_FORMS` ("from 3 March 2021 to Apr 5, 2022"), and its answer the
    ISO 8601 interval ``2021-03-03/2022-04-05`` (the earlier date first).
    """
    rng = random.Random(DATA_SEED)
    formats = _date_formats()
    lo, hi = dt.date(first_year, 1, 1).toordinal(), dt.date(last_year, 12, 31).toordinal()
    out: dict[str, str] = {}
    tries = 0
    while len(out) < n:
        if ranges:
            a, b = sorted(dt.date.fromordinal(rng.randint(lo, hi)) for _ in range(2))
            text = rng.choice(RANGE_FORMS).format(rng.choice(formats)(a), rng.choice(formats)(b))
            out.setdefault(text, f"{a.isoformat()}/{b.isoformat()}")
        else:
            day = dt.date.fromordinal(rng.randint(lo, hi))
            out.setdefault(rng.choice(formats)(day), day.isoformat())
        tries += 1
        if tries > 50 * n:
            raise UserError(f"Could not draw {n} distinct dates; lower n.")
    return list(out.items())


@register_dataset("dates")
def dates(
    n: int = 22000, n_val: int = 1000, n_test: int = 1000, bucket: bool = False, ranges: bool = False
) -> DataBundle:
    """Dates between 1900 and 2099 written in 18 human formats → ``YYYY-MM-DD``.

    Args:
        n: distinct inputs over all splits (default 22000).
        n_val: for validation (default 1000).
        n_test: for the test split (default 1000).
        bucket: batch inputs of similar length together in training.
        ranges: ranges of two dates → ``YYYY-MM-DD/YYYY-MM-DD`` instead (inputs of 13 to
            about 90 characters, 21 out: the longer task on which a model without attention fails).
    """
    _check_sizes(n, n_val, n_test, "dates")
    pairs = date_pairs(n, ranges=ranges)
    train, val, test = _three_way(pairs, n_val, n_test)
    return pair_bundle(
        train,
        val,
        test,
        char_vocab([s for s, _ in pairs]),
        SPECIALS + list("-/0123456789" if ranges else "-0123456789"),
        bucket=bucket,
    )


# ----------------------------------------------------------------------------- English -> French

#: The English beginnings of the PyTorch translation tutorial's subset (after normalisation).
ENG_PREFIXES = ("i am ", "i m ", "he is", "he s ", "she is", "she s ", "you are", "you re ", "we are", "we re ",
                "they are", "they re ")  # fmt: skip
MAX_TOKENS = 10


def normalize(text: str) -> str:
    """The tutorial's ``normalizeString``: lower-case, fold to ASCII, ``!`` and ``?`` as tokens of their own,
    every other run of non-letters (``.`` included) one space, stripped."""
    text = unicodedata.normalize("NFD", text.lower().strip())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    text = re.sub(r"([.!?])", r" \1", text)
    return re.sub(r"[^a-z!?]+", " ", text).strip()


def fra_pairs(data_dir: str | None = None) -> list[tuple[str, str]]:
    """The filtered (English, French) pairs of ``<root>/text/fra-eng/fra-eng.zip``, normalised, in file order."""
    path = data_root(data_dir) / "text" / "fra-eng" / "fra-eng.zip"
    if not path.is_file():
        raise UserError(f"fra_eng needs {path} (the ManyThings fra-eng.zip); put it there or set --data-dir.")
    with zipfile.ZipFile(path) as z, z.open("fra.txt") as f:
        lines = f.read().decode("utf-8").splitlines()
    out = []
    for line in lines:
        cols = line.split("\t")
        if len(cols) < 2:
            continue
        eng = normalize(cols[0])
        if not eng.startswith(ENG_PREFIXES) or len(eng.split(" ")) >= MAX_TOKENS:
            continue
        fra = normalize(cols[1])
        if len(fra.split(" ")) < MAX_TOKENS:
            out.append((eng, fra))
    return out


def word_vocab(sentences: Sequence[Sequence[str]], min_count: int = 1) -> list[str]:
    """``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` and the words seen ``min_count`` times, by frequency then name."""
    counts: dict[str, int] = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [*SPECIALS, UNK, *kept]


@register_dataset("fra_eng")
def fra_eng(
    data_dir: str | None = None, val_fraction: float = 0.1, test_fraction: float = 0.0, bucket: bool = False
) -> DataBundle:
    """English→French word-level pairs (the PyTorch tutorial's subset), split by English sentence.

    ``val_fraction`` of the distinct English sentences (with every translation of them) validate
    and ``test_fraction`` more test; the vocabularies are the training split's words, others
    read as ``<unk>``.

    Args:
        data_dir: the data root (``--data-dir``; else ``$ARCHZOO_DATA``).
        val_fraction: share of English sentences held out for validation (default 0.1).
        test_fraction: share held out for test (default 0, no test split).
        bucket: batch sentences of similar length together in training.
    """
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError("data.val_fraction and data.args.test_fraction must be in [0, 1) and sum below 1.")
    pairs = fra_pairs(data_dir)
    english = sorted({e for e, _ in pairs})
    random.Random(DATA_SEED).shuffle(english)
    n_val, n_test = int(round(len(english) * val_fraction)), int(round(len(english) * test_fraction))
    part = {e: 1 for e in english[:n_val]} | {e: 2 for e in english[n_val : n_val + n_test]}
    splits: list[list[tuple[list[str], list[str]]]] = [[], [], []]
    for e, f in pairs:
        splits[part.get(e, 0)].append((e.split(" "), f.split(" ")))
    train, val, test = splits
    src = word_vocab([s for s, _ in train])
    tgt = word_vocab([t for _, t in train])
    return pair_bundle(train, val, test or None, src, tgt, level="word", bucket=bucket)
