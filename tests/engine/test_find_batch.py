"""archzoo.engine.find_batch: doubling then bisection, and real probes in fresh processes."""

from __future__ import annotations

import pytest

from archzoo.engine import find_batch as fb
from archzoo.errors import UserError

QUIET = ["train.threads=1"]


def _threshold(limit: int, examples: int = 10**6) -> tuple[list[int], object]:
    """A memory model where a batch fits when it is at most ``limit`` (peak grows with the batch)."""
    asked: list[int] = []

    def fits(b: int) -> fb.Probe:
        asked.append(b)
        drawn = min(b, examples)
        return fb.Probe(b, drawn, 100.0 + drawn, 100.0, b <= limit, "" if b <= limit else "over", examples)

    return asked, fits


@pytest.mark.parametrize("limit", [2, 3, 37, 64, 100, 1000])
def test_search_finds_the_threshold(limit: int) -> None:
    asked, fits = _threshold(limit)
    best, probes = fb.search(fits, max_batch=65536)
    assert best == limit
    # Doubling from 2 up to the first failure, then bisection: about 2 log2(limit) probes.
    doubling = [b for b in asked if b & (b - 1) == 0]
    assert doubling[:3] == [2, 4, 8][: len(doubling[:3])]
    assert len(asked) <= 2 * max(1, limit.bit_length()) + 1
    assert [p.batch for p in probes] == asked


def test_search_stops_at_the_split_and_the_cap() -> None:
    asked, fits = _threshold(10**9, examples=40)
    best, _ = fb.search(fits, max_batch=65536)
    assert best == 40 and asked[-1] == 40  # 2, 4, ..., 32, then the whole split
    asked, fits = _threshold(10**9)
    best, _ = fb.search(fits, max_batch=24)
    assert best == 24 and asked == [2, 4, 8, 16, 24]


def test_search_refuses_when_nothing_fits() -> None:
    _, fits = _threshold(1)
    with pytest.raises(UserError, match="Batch 2, the smallest probed, does not fit"):
        fb.search(fits, max_batch=64)


def test_probe_in_a_fresh_process_reports_its_peak() -> None:
    r = fb.probe_in_subprocess("digits-mlp", QUIET, 16, None)
    assert r["batch"] == 16 and r["drawn"] == 16 and r["device"] == "cpu" and not r["oom"]
    assert r["peak_mb"] >= r["setup_mb"] > 50  # an interpreter with torch holds tens of MB at least
    assert r["train_examples"] > 1000


@pytest.mark.slow
def test_find_batch_end_to_end_with_a_cap() -> None:
    r = fb.find_batch("digits-mlp", QUIET, budget_mb=100_000, max_batch=4)
    assert r["batch_size"] == 4 and [p["batch"] for p in r["probes"]] == [2, 4]
    assert all(p["fits"] for p in r["probes"])
    text = fb.format_result(r)
    assert "largest batch for digits-mlp on cpu: 4" in text and "100000 MB" in text


def test_find_batch_refusals() -> None:
    with pytest.raises(UserError, match="needs --budget-mb"):
        fb.find_batch("digits-mlp", [*QUIET, "train.device=cpu"])
    with pytest.raises(UserError, match="--budget-mb must be positive"):
        fb.find_batch("digits-mlp", QUIET, budget_mb=-1)
    with pytest.raises(UserError, match="--max-batch must be at least 2"):
        fb.find_batch("digits-mlp", QUIET, budget_mb=100, max_batch=1)
    with pytest.raises(UserError, match="Unknown config key"):
        fb.find_batch("digits-mlp", ["train.nope=1"], budget_mb=100)
    with pytest.raises(UserError, match=r"Batch 2, the smallest probed, does not fit: its peak of \d+ MB is over"):
        fb.find_batch("digits-mlp", QUIET, budget_mb=1)
