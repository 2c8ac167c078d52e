"""archzoo runs: the table of runs with their key metric; archzoo runs compare: curves of several runs together."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from archzoo.cli import main
from archzoo.runs import describe_run, key_metric


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    quick = ["train.threads=1", "log.progress=none", "log.plots=false", "log.tensorboard=false"]
    assert main(["train", "digits-mlp", "train.epochs=2", *quick, "--run-dir", str(root / "digits-mlp" / "a")]) == 0
    assert main(["train", "diabetes-mlp", "train.epochs=2", *quick, "--run-dir", str(root / "diabetes-mlp" / "b")]) == 0
    return root


def test_table_lists_each_run_with_its_key_metric(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--dir", str(two_runs)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["run", "recipe", "model"]
    rows = {line.split()[1]: line for line in out[1:]}
    assert set(rows) == {"digits-mlp", "diabetes-mlp"}
    acc = json.loads((two_runs / "digits-mlp" / "a" / "results.json").read_text())["metrics"]["test/acc"]
    assert f"test/acc {acc:.4g}" in rows["digits-mlp"] and "finished" in rows["digits-mlp"]
    assert "test/rmse" in rows["diabetes-mlp"]


def test_recipe_filter_and_json(two_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--dir", str(two_runs), "--recipe", "diabetes-mlp", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["recipe"] for r in rows] == ["diabetes-mlp"]
    assert rows[0]["metric"] == "test/rmse" and rows[0]["value"] > 0


def test_an_interrupted_run_says_where_it_stopped(two_runs: Path, tmp_path: Path) -> None:
    run = tmp_path / "cut"
    shutil.copytree(two_runs / "digits-mlp" / "a", run)
    (run / "results.json").unlink()
    row = describe_run(run)
    assert row["status"].startswith("stopped at epoch") and row["value"] is None


def test_key_metric_prefers_the_anchor_then_the_telling_metrics() -> None:
    metrics = {"test/loss": 0.3, "test/f1": 0.8, "test/acc": 0.9, "val/f1": 0.7}
    assert key_metric({"anchor": {"metric": "test/f1"}}, metrics) == "test/f1"
    assert key_metric({}, metrics) == "test/acc"
    assert key_metric({}, {"test/loss": 1.0, "test/rmse": 2.0}) == "test/rmse"
    assert key_metric({}, {"val/loss": 1.0, "val/mystery": 2.0}) == "val/loss"
    assert key_metric({}, {"test/mystery": 2.0}) == "test/mystery"
    assert key_metric({}, {}) is None


def test_compare_plots_the_curves_of_both_runs(two_runs: Path, tmp_path: Path, capsys) -> None:
    a, b = two_runs / "digits-mlp" / "a", two_runs / "diabetes-mlp" / "b"
    assert main(["runs", "compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    paths = [Path(p) for p in capsys.readouterr().out.split()]
    names = {p.name for p in paths}
    assert {"loss.png", "acc.png", "rmse.png"} <= names  # loss from both, acc from one, rmse from the other
    for p in paths:
        with Image.open(p) as im:
            assert im.size[0] > 300


def test_bad_uses_are_one_sentence(two_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, words in [
        (["runs", "compare", str(two_runs / "digits-mlp" / "a")], "two or more"),
        (["runs", "compare", str(two_runs / "digits-mlp" / "a"), str(tmp_path)], "has no metrics.csv"),
        (["runs", "--dir", str(tmp_path / "none")], "does not exist"),
        (["runs", "delete"], "Unknown runs command"),
    ]:
        assert main(argv) != 0
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
