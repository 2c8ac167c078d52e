"""Tests for benchmarks/report.py: the README and docs tables are what the committed JSON results give."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("archzoo_benchmarks_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tables_are_generated_from_the_results() -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_check_names_a_page_whose_table_was_edited(report: ModuleType, tmp_path: Path) -> None:
    for rel in ["README.md", *report.PAGES]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert report.sync(root=tmp_path, check=True) == []
    page = tmp_path / "docs" / "generative.md"
    page.write_text(page.read_text().replace("| 1.06 |", "| 0.99 |"))
    assert report.sync(root=tmp_path, check=True) == ["docs/generative.md"]
    assert report.sync(root=tmp_path) == ["docs/generative.md"]  # rewritten
    assert report.sync(root=tmp_path, check=True) == []


def _result(name: str, recipe: str | None = None) -> dict:
    r = {"benchmark": name, "summary": "s", "value": "1", "date": "2026-01-01", "machine": {"cpu": "CPU"}}
    if recipe:
        r["recipe"] = recipe
    return r


def test_readme_keeps_headlines_and_the_pages_keep_everything(report: ModuleType) -> None:
    results = [
        _result("generative-frechet"),  # a summary over several recipes
        _result("generative-frechet-ddpm", "fashion-ddpm"),  # a part of it
        _result("generative-frechet-ddpm-2ep-g2", "fashion-ddpm"),  # another setting of that part
        _result("generative-vae"),
        _result("precision"),
    ]
    t = report.tables(results)
    readme = "\n".join(t["README.md"])
    assert "generative-frechet:" in readme and "generative-vae:" in readme and "precision:" in readme
    assert "generative-frechet-ddpm" not in readme
    assert len(t["docs/generative.md"]) == 2 + 4 and len(t["docs/engine.md"]) == 2 + 1


def test_a_labelled_result_of_another_recipe_is_a_headline(report: ModuleType) -> None:
    by_name = {
        "time_to_accuracy": _result("time_to_accuracy", "fashion-cnn"),
        "time_to_accuracy-2threads": _result("time_to_accuracy-2threads", "fashion-cnn"),
        "time_to_accuracy-fashion-resnet": _result("time_to_accuracy-fashion-resnet", "fashion-resnet"),
    }
    assert report.is_detail(by_name["time_to_accuracy-2threads"], by_name)
    assert not report.is_detail(by_name["time_to_accuracy-fashion-resnet"], by_name)
    assert not report.is_detail(by_name["time_to_accuracy"], by_name)


def test_every_committed_result_has_a_page(report: ModuleType) -> None:
    for r in report.load():
        assert report.page_of(r["benchmark"]) in report.PAGES
    with pytest.raises(SystemExit, match="belongs to no page"):
        report.page_of("mystery_benchmark")


def test_a_seq2seq_row_shows_greedy_and_beam_and_the_comparison_setting(report: ModuleType) -> None:
    def trained(params: int) -> dict:
        return {"parameters": params, "epochs_run": 6, "train_seconds": 100.0}

    r = {"benchmark": "seq2seq-sort", "recipe": "sort-gru", "metric": "test/exact", "value": 1.0, "target": 1.0,
         "meets_target": True, "no_attention_value": 0.3, "beam": 5, "date": "2026-01-01", "machine": {"cpu": "CPU"},
         "rows": {"attention": trained(10), "comparison_attention": trained(10), "no_attention": trained(8)},
         "decoding": {"attention": {"greedy": 1.0, "beam": 1.0}, "comparison_attention": {"greedy": 0.9, "beam": 0.95},
                      "no_attention": {"greedy": 0.3, "beam": 0.35}},
         "comparison": {"overrides": ["data.args.min_len=25", "train.epochs=6"], "attention": 0.9, "no_attention": 0.3}}  # fmt: skip
    line = report.row(r)
    assert "with attention greedy 100.00% / beam 5 100.00%" in line
    assert "at min_len=25 epochs=6: with greedy 90.00% / beam 5 95.00%" in line
    assert "without greedy 30.00% / beam 5 35.00%" in line and "| yes |" in line
    del r["comparison"], r["decoding"]  # a result from before the comparison and the beam: the shipped pair
    assert "with attention 100.00% (10 params, 6 epochs, 100 s); without 30.00% (8 params" in report.row(r)


def test_a_recipe_row_states_its_stem_input_size_and_epochs(report: ModuleType) -> None:
    r = {"benchmark": "recipe-fashion-resnet50", "recipe": "fashion-resnet50", "metric": "test/acc", "value": 0.9,
         "target": None, "meets_target": None, "anchor": None, "parameters": 23_000_000, "epochs": 2,
         "epochs_run": 2, "train_seconds": 900.0, "stem": "imagenet", "input_size": "1x28x28",
         "date": "2026-01-01", "machine": {"cpu": "CPU", "torch_threads": 1}}  # fmt: skip
    assert "23,000,000 params, imagenet stem, input 1x28x28, 2 epochs, 900 s" in report.row(r)
    r["epochs_run"] = 1  # early stopping: the planned epochs are shown beside the ones run
    assert "input 1x28x28, 1 of 2 epochs, 900 s" in report.row(r)
    r["stem"] = None  # a model without a stem argument
    assert "params, input 1x28x28, 1 of 2 epochs" in report.row(r)
    for key in ("stem", "input_size", "epochs"):  # a result from before issue 18 still renders
        del r[key]
    assert "23,000,000 params, 1 epochs, 900 s" in report.row(r)
