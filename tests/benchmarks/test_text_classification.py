"""benchmarks/text_classification.py: the TF-IDF + logistic regression baseline and its scores on tiny texts."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_bench) -> ModuleType:
    pytest.importorskip("sklearn")
    return load_bench("text_classification")


def test_scores_count_the_confusion_by_true_row(bench: ModuleType) -> None:
    s = bench.scores([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert s["acc"] == pytest.approx(0.6)
    assert s["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert s["f1"] == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert s["macro_f1"] == pytest.approx(1.3 / 3)


def test_baseline_picks_its_setting_on_val_and_scores_test(bench: ModuleType) -> None:
    # Two "languages" told apart by their letters: ...ov / ...ez.
    a = ["ivanov", "petrov", "smirnov", "popov", "sokolov", "lebedev", "kozlov", "novikov"]
    b = ["garcia", "lopez", "martinez", "gonzalez", "perez", "sanchez", "ramirez", "torrez"]
    texts = {"train": a[:6] + b[:6], "val": [a[6], b[6]], "test": [a[7], b[7]]}
    labels = {"train": [0] * 6 + [1] * 6, "val": [0, 1], "test": [0, 1]}
    r = bench.tfidf_baseline(texts, labels, ["ru", "es"], analyzers=("char", "char_wb"), cs=(0.01, 10.0), select="acc")
    assert r["test"]["acc"] == 1.0 and r["val"]["acc"] == 1.0
    assert len(r["grid"]) == 4 and {g["analyzer"] for g in r["grid"]} == {"char", "char_wb"}
    assert r["analyzer"] in ("char", "char_wb") and r["C"] in (0.01, 10.0)
    assert r["test_pred"] == [0, 1]
    spam = bench.tfidf_baseline(
        texts, labels, ["ru", "es"], analyzers=("word",), ngram_range=(1, 1), cs=(1.0,), select="es_f1", positive="es"
    )
    assert spam["grid"][0]["val_es_f1"] == spam["val"]["f1"]["es"]


def test_confusion_plot_is_written(bench: ModuleType, tmp_path: Path) -> None:
    path = bench.plot_confusion(
        {"x": [[3, 1], [0, 2]], "y": [[4, 0], [1, 1]]}, ["ham", "spam"], tmp_path / "c.png", "t"
    )
    assert path.is_file() and path.stat().st_size > 1000
