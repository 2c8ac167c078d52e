"""benchmarks/transformer_seq2seq.py: the GRU row taken from seq2seq_quality's results, and the payload."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_bench) -> ModuleType:
    return load_bench("transformer_seq2seq")


def _seq2seq_result(tmp_path: Path, overrides: list[str]) -> Path:
    row = {"overrides": overrides, "parameters": 1234, "train_seconds": 56.7, "epochs_run": 4,
           "metrics": {"test/exact": 0.99}}  # fmt: skip
    d = {"recipe": "sort-gru", "date": "2026-12-01", "machine": {"git": "abc1234"}, "beam": 5,
         "decoding": {"attention": {"greedy": 0.99, "beam": 0.995}}, "rows": {"attention": row}}  # fmt: skip
    (tmp_path / "seq2seq-sort.json").write_text(json.dumps(d))
    return tmp_path


def test_gru_row_from_results_says_where_it_came_from(bench: ModuleType, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "RESULTS", _seq2seq_result(tmp_path, ["train.threads=1"]))
    gru = bench.gru_from_results("sort", "test/exact", 5)
    assert gru["greedy"] == 0.99 and gru["beam"] == 0.995 and gru["parameters"] == 1234
    assert "seq2seq-sort.json" in gru["source"] and "abc1234" in gru["source"] and "not retrained" in gru["source"]
    with pytest.raises(SystemExit):  # decoded with another beam width: not comparable
        bench.gru_from_results("sort", "test/exact", 3)
    monkeypatch.setattr(bench, "RESULTS", _seq2seq_result(tmp_path, ["train.threads=1", "data.args.n=10"]))
    with pytest.raises(SystemExit):  # not the shipped recipe's data
        bench.gru_from_results("sort", "test/exact", 5)


def test_summary_is_built_from_both_rows(bench: ModuleType) -> None:
    tf = {"recipe": "addition-transformer", "greedy": 0.985, "beam": 0.99, "parameters": 100_000, "train_seconds": 300.0,
          "source": "trained by this benchmark"}  # fmt: skip
    gru = {"recipe": "addition-gru", "greedy": 0.9975, "beam": 0.9975, "parameters": 219_374, "train_seconds": 215.4,
           "source": "trained by this benchmark"}  # fmt: skip
    p = bench.summarize("addition", {"transformer": tf, "gru": gru}, 5, 2.5)
    assert p["value"] == 0.985 and p["target"] == 0.99 and p["meets_target"] is False and p["anchor"] == 0.9975
    assert "98.50%" in p["summary"] and "99.75%" in p["summary"] and "219,374" in p["summary"]
    assert "load 2.5" in p["summary"] and "reused" not in p["summary"]
    fra = bench.summarize("fra", {"transformer": {**tf, "greedy": 31.2}, "gru": {**gru, "greedy": 28.0}}, 5, None)
    assert fra["meets_target"] is None and "31.2 BLEU" in fra["summary"] and fra["unit"] == "BLEU"
