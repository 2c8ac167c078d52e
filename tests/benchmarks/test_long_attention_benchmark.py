"""benchmarks/long_attention.py: the crossover rule and one real case in a child, within and past its memory cap."""

from __future__ import annotations

import argparse
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_bench) -> ModuleType:
    return load_bench("long_attention")


def test_crossover_is_the_shortest_length_winning_at_every_longer_one(bench: ModuleType) -> None:
    ref = {t: {"status": "ok", "ms": 10.0} for t in (1, 2, 4, 8)}
    rows = {1: {"status": "ok", "ms": 5.0}, 2: {"status": "ok", "ms": 12.0}}
    rows |= {4: {"status": "ok", "ms": 9.0}, 8: {"status": "ok", "ms": 1.0}}
    assert bench.crossover(rows, ref, "ms") == 4  # faster at 1, slower at 2: the crossover is 4
    assert bench.crossover({**rows, 8: {"status": "over_cap"}}, ref, "ms") is None
    ref_over = {**ref, 8: {"status": "over_cap"}}  # sdpa past the cap loses to any kernel that ran
    assert bench.crossover({**rows, 8: {"status": "ok", "ms": 99.0}}, ref_over, "ms") == 4


def _args(cap_mb: int) -> argparse.Namespace:
    return argparse.Namespace(heads=2, head_dim=16, repeats=1, cap_mb=cap_mb, device="cpu", threads=1, case_timeout=120)


@pytest.mark.slow  # two fresh interpreters importing torch: ~20 s on a loaded machine
def test_a_case_runs_in_a_child_and_one_past_the_cap_is_recorded(bench: ModuleType) -> None:
    ok = bench.run_case("chunked", 256, _args(500))
    assert ok["status"] == "ok" and ok["forward_ms"] > 0 and ok["train_ms"] > 0 and ok["train_peak"] >= 0
    # manual attention at 4096 holds 2 x 4096^2 fp32 scores (128 MB each): past a 64 MB cap
    over = bench.run_case("manual", 4096, _args(64))
    assert over["status"] == "over_cap", over
