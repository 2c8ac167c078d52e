"""benchmarks/time_to_accuracy.py: the tutorials' SimpleCNN, the ratio's lower bound, and both sides on a few images."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_bench) -> ModuleType:
    return load_bench("time_to_accuracy")


def test_simple_cnn_is_the_tutorials_network(bench: ModuleType) -> None:
    model = bench.SimpleCNN()
    assert sum(p.numel() for p in model.parameters()) == 206_922
    assert [m.__class__.__name__ for m in model.children()] == [
        "Conv2d",
        "Conv2d",
        "MaxPool2d",
        "ReLU",
        "Linear",
        "Linear",
    ]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def _run(seconds: float, reached: bool) -> dict:
    return {"seconds": seconds, "reached": reached}


def test_a_tutorial_miss_counts_at_its_cap_and_makes_the_ratio_a_lower_bound(bench: ModuleType) -> None:
    tut = [_run(100.0, True), _run(300.0, False), _run(200.0, True)]
    s = bench.summarize(tut, [_run(20.0, True), _run(20.0, True), _run(20.0, True)])
    assert s["tutorial_seconds"] == pytest.approx(200.0)
    assert s["ratio"] == pytest.approx(10.0)
    assert s["lower_bound"] is True
    s = bench.summarize([_run(100.0, True)], [_run(25.0, True)])
    assert s["ratio"] == pytest.approx(4.0) and s["lower_bound"] is False


def test_an_archzoo_miss_leaves_no_ratio(bench: ModuleType) -> None:
    s = bench.summarize([_run(100.0, True)], [_run(20.0, True), _run(30.0, False)])
    assert s["ratio"] is None and s["archzoo_all_reached"] is False


def test_mnist_files_are_unpacked_where_torchvision_looks(bench: ModuleType, data_root: Path, tmp_path: Path) -> None:
    from torchvision import datasets

    bench.unpack_for_torchvision(data_root / "mnist", tmp_path, "MNIST")  # three .gz files and one plain one
    assert len(datasets.MNIST(tmp_path, train=False, download=False)) == 10_000


def test_both_sides_run_one_short_epoch(bench: ModuleType, data_root: Path) -> None:
    torch.set_num_threads(1)
    tut = bench.tutorial("fashion", data_root / "fashion-mnist", 0, 0.0, 3, torch.device("cpu"), limit=256)
    assert tut["reached"] and len(tut["history"]) == 1  # threshold 0: the first epoch reaches it
    assert tut["setup_seconds"] > 0 and 0.0 <= tut["history"][0]["test_acc"] <= 1.0
    az, trainer = bench.archzoo_side(
        "fashion-speedrun", ["train.threads=1", "data.args.limit=256", f"data.dir={data_root}"], 0, 0.0, None
    )
    assert az["reached"] and [h["epoch"] for h in az["history"]] == [1]
    assert trainer.cfg.model.name == "convnet_fast"
    missed = bench.tutorial("fashion", data_root / "fashion-mnist", 0, 1.01, 2, torch.device("cpu"), limit=256)
    assert not missed["reached"] and len(missed["history"]) == 2  # capped at max_epochs
