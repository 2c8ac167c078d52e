"""The seq2seq datasets: vocabularies, the rules of each task, held-out pairs, unambiguous dates, fra_eng."""

import datetime as dt
import re
import zipfile

import pytest
import torch

from archzoo.data import seq2seq_tasks as s2s
from archzoo.errors import UserError


def _pairs(split, info):
    out = []
    for b in split.batches(500):
        for i in range(len(b)):
            src = s2s.decode(b.x[i, : b.lengths[i]].tolist(), info["src_itos"], info["level"])
            assert int(b.y[i, b.y_lengths[i] - 1]) == info["eos_id"]
            out.append((src, s2s.decode(b.y[i].tolist(), info["tgt_itos"], info["level"])))
    return out


def test_reverse_and_sort_follow_their_rules() -> None:
    for build, rule in ((s2s.reverse, lambda s: s[::-1]), (s2s.sort, lambda s: "".join(sorted(s)))):
        b = build(n=300, n_val=30, n_test=30)
        assert b.info["pad_id"] == 0 and b.info["bos_id"] == 1 and b.info["eos_id"] == 2
        pairs = _pairs(b.train, b.info) + _pairs(b.val, b.info) + _pairs(b.test, b.info)
        assert len(pairs) == 300 and len({s for s, _ in pairs}) == 300
        assert all(t == rule(s) and 5 <= len(s) <= 20 and set(s) <= set("abcdefghij") for s, t in pairs)
    assert _pairs(s2s.reverse(n=50, n_val=5, n_test=5).val, b.info) == _pairs(
        s2s.reverse(n=50, n_val=5, n_test=5).val, b.info
    )


def test_addition_never_trains_on_held_out_pairs() -> None:
    trainable, held = s2s.addition_pairs(max_value=60)
    assert len(held) == 360 and not set(trainable) & set(held) and len(set(trainable) | set(held)) == 3600
    b = s2s.addition(n_train=1000, n_val=100, n_test=100, max_value=60)
    train = _pairs(b.train, b.info)
    seen = {s for s, _ in train}
    for src, _ in _pairs(b.val, b.info) + _pairs(b.test, b.info):
        assert src not in seen
    for src, tgt in train[:50]:
        x, y = map(int, src.split("+"))
        assert int(tgt) == x + y
    assert (s2s.addition_pairs(60)[1]) == held  # a fixed seed


def test_addition_with_too_many_pairs_to_list_holds_out_by_a_fixed_hash(monkeypatch) -> None:
    monkeypatch.setattr(s2s, "LISTED_PAIRS", 100)  # 60 * 60 pairs are then too many to list
    b = s2s.addition(n_train=140, n_val=20, n_test=20, max_value=60)
    train, held = _pairs(b.train, b.info), _pairs(b.val, b.info) + _pairs(b.test, b.info)
    assert len(train) == 140 and len(held) == 40 and len({s for s, _ in train + held}) == 180
    for src, tgt in train + held:
        x, y = map(int, src.split("+"))
        assert int(tgt) == x + y and max(x, y) < 60
        assert s2s.is_held_out(x, y, 60) == ((src, tgt) in held)
    share = sum(s2s.is_held_out(a, c, 60) for a in range(60) for c in range(60)) / 3600
    assert 0.08 < share < 0.12
    with pytest.raises(UserError, match="at most 180 pairs"):
        s2s.addition(n_train=170, n_val=10, n_test=10, max_value=60)
    b5 = s2s.addition(n_train=50, n_val=5, n_test=5, max_value=100000)  # five digits, the real threshold
    assert b5.info["max_src_len"] <= 11 and len(_pairs(b5.train, b5.info)) == 50


def test_every_date_input_has_one_iso_answer() -> None:
    pairs = s2s.date_pairs(3000)
    answers: dict[str, str] = {}
    for text, iso in pairs:
        assert answers.setdefault(text, iso) == iso
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", iso) and dt.date.fromisoformat(iso)
    # Each writer reads one way: no two days give one text, over a whole leap year and more.
    for fmt in s2s._date_formats():
        texts = {}
        for k in range(800):
            day = dt.date(2019, 12, 1) + dt.timedelta(days=k)
            assert texts.setdefault(fmt(day), day) == day
    # the month is in words, or the year comes first
    months = [m.lower() for m in s2s.calendar.month_abbr[1:]]
    assert all(any(m in t.lower() for m in months) or re.match(r"\d{4}", t) for t, _ in pairs)
    b = s2s.dates(n=400, n_val=40, n_test=40)
    assert all(len(t) == 10 for _, t in _pairs(b.val, b.info))


def test_date_ranges_read_as_iso_intervals() -> None:
    pairs = s2s.date_pairs(300, ranges=True)
    assert len({t for t, _ in pairs}) == 300
    for text, iso in pairs:
        a, b = iso.split("/")
        assert a <= b and len(a) == len(b) == 10
        assert any(text.startswith(f.split("{}")[0]) for f in s2s.RANGE_FORMS)
    b = s2s.dates(n=300, n_val=30, n_test=30, ranges=True)
    assert all(len(t) == 21 and t[10] == "/" for _, t in _pairs(b.val, b.info))
    assert max(len(t) for t, _ in pairs) > 40


def test_fra_eng_reads_the_zip(tmp_path) -> None:
    folder = tmp_path / "text" / "fra-eng"
    folder.mkdir(parents=True)
    lines = ["Go.\tVa !", "I am cold.\tJ'ai froid.", "He is tall!\tIl est grand\u202f!", "You're late.\tTu es en retard.",
             "I'm sure it's going to be fine tomorrow, really.\tJe suis sûr que ça ira très bien demain, vraiment."]  # fmt: skip
    lines += [f"We are {w}.\tNous sommes {w}." for w in ("ready", "here", "tired", "happy", "home", "early", "late")]
    with zipfile.ZipFile(folder / "fra-eng.zip", "w") as z:
        z.writestr("fra.txt", "\n".join(lines) + "\n")
    pairs = s2s.fra_pairs(str(tmp_path))
    assert pairs[0] == ("i am cold", "j ai froid")
    assert ("he is tall !", "il est grand !") in pairs and ("you re late", "tu es en retard") in pairs
    assert len(pairs) == 10  # "go" and the long sentence are left out
    b = s2s.fra_eng(data_dir=str(tmp_path), val_fraction=0.2)
    assert b.info["level"] == "word" and len(b.train) + len(b.val) == 10 and len(b.val) == 2
    with pytest.raises(UserError, match="fra-eng.zip"):
        s2s.fra_eng(data_dir=str(tmp_path / "nowhere"))


def test_encode_decode_and_unknown_words() -> None:
    itos = [*s2s.SPECIALS, s2s.UNK, "hello", "world"]
    ids = s2s.encode(["hello", "there"], itos, eos=True)
    assert ids == [4, 3, 2]
    assert s2s.decode(ids + [5], itos, "word") == "hello <unk>"
    with pytest.raises(UserError):
        s2s.encode(list("xy"), [*s2s.SPECIALS, "x"])
    assert torch.equal(torch.tensor(s2s.encode("ab", [*s2s.SPECIALS, "a", "b"])), torch.tensor([3, 4]))
