"""benchmarks/tu_quality.py: the val-mean protocol chooses its epoch on the validation folds alone."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_bench) -> ModuleType:
    return load_bench("tu_quality")


def _run(val: list[float], test: list[float], key: str = "val/acc") -> dict:
    return {
        "val": [{key: v, "val/acc": v} for v in val],
        "test": [{"test/acc": t} for t in test],
        "summary": {"train_seconds": 1.0},
    }


def test_val_mean_reads_each_fold_at_the_first_peak_of_the_mean_validation_curve(bench: ModuleType) -> None:
    # Mean validation curve 0.6, 0.8, 0.8, 0.7: the first best epoch is 2, wherever the test curves peak.
    runs = [_run([0.5, 0.9, 0.7, 0.7], [0.1, 0.6, 1.0, 1.0]), _run([0.7, 0.7, 0.9, 0.7], [0.2, 0.8, 1.0, 1.0])]
    v = bench._val_mean(runs, "val/acc", "max")
    assert v["epoch"] == 2
    assert v["per_fold"] == [60.0, 80.0]
    assert v["mean"] == pytest.approx(70.0)
    assert v["mean_val"] == pytest.approx(0.8)


def test_val_mean_follows_a_monitor_that_is_minimised(bench: ModuleType) -> None:
    # Mean validation loss 0.85, 0.5, 0.4: epoch 3.
    runs = [_run([0.9, 0.4, 0.5], [0.5, 0.75, 1.0], "val/loss"), _run([0.8, 0.6, 0.3], [0.5, 0.25, 0.5], "val/loss")]
    v = bench._val_mean(runs, "val/loss", "min")
    assert v["epoch"] == 3
    assert v["per_fold"] == [100.0, 50.0]


def test_xu_reads_the_test_fold_curves_at_their_mean_peak(bench: ModuleType) -> None:
    runs = [_run([0.5, 1.0, 0.5], [0, 0, 0]), _run([1.0, 0.7, 0.5], [0, 0, 0])]
    x = bench._xu(runs)
    assert x["epoch"] == 2
    assert x["per_fold"] == [100.0, 70.0]


def test_settings_are_every_combination_of_the_grid_axes(bench: ModuleType) -> None:
    assert bench._settings(["a=1,2", "b=x"]) == [["a=1", "b=x"], ["a=2", "b=x"]]
    with pytest.raises(SystemExit):
        bench._settings(["a"])


def test_a_fold_records_test_accuracy_every_epoch_without_changing_its_training(
    bench: ModuleType, mutag_root: Path, tmp_path: Path
) -> None:
    base = bench._base(tmp_path, ["train.epochs=3", "model.args.hidden=8"], str(mutag_root))
    over = [*base, "data.args.fold=2", "data.args.validation=fold"]
    seen = bench._fit("mutag-gin", over, True)
    plain = bench._fit("mutag-gin", over, False)
    assert len(seen["val"]) == len(seen["test"]) == 3
    assert plain["test"] == []
    assert seen["val"] == plain["val"]  # evaluating the test fold draws nothing and moves no BatchNorm statistics
    best = seen["summary"]["best_epoch"]
    assert seen["test"][best - 1]["test/acc"] == pytest.approx(seen["results"]["test/acc"], abs=1e-6)
