"""MetricsLog: metrics.csv and the TensorBoard events written through SummaryWriter, read back by TensorBoard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.engine.loggers import MetricsLog, read_metrics

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _events(tb: Path, **size: int) -> EventAccumulator:
    ea = EventAccumulator(str(tb), size_guidance={"scalars": 0, "histograms": 0, **size})
    ea.Reload()
    return ea


def test_each_logged_row_is_on_disk_before_close(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.csv", tmp_path / "tb")
    log.log({"epoch": 0.5, "step": 5, "time": 0.1, "train/loss": 1.25, "note": "text is not a scalar"})
    # Read while the writer is still open: the row was flushed with the table.
    ea = _events(tmp_path / "tb")
    assert ea.Tags()["scalars"] == ["train/loss"]
    (event,) = ea.Scalars("train/loss")
    assert (event.step, event.value) == (5, pytest.approx(1.25))
    assert read_metrics(tmp_path / "metrics.csv")[0]["train/loss"] == pytest.approx(1.25)
    log.close()


def test_resume_purges_the_steps_after_the_checkpoint(tmp_path: Path) -> None:
    first = MetricsLog(tmp_path / "metrics.csv", tmp_path / "tb")
    for step in range(1, 5):  # a run killed after step 4, checkpointed at step 2
        first.log({"epoch": 0, "step": step, "time": 0.0, "train/loss": float(step)})
    first.close()
    resumed = MetricsLog(tmp_path / "metrics.csv", tmp_path / "tb", purge_step=3)
    resumed.load(upto_step=2)
    for step in (3, 4, 5):
        resumed.log({"epoch": 0, "step": step, "time": 0.0, "train/loss": 10.0 * step})
    resumed.close()
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 2
    events = _events(tmp_path / "tb").Scalars("train/loss")
    # Steps 3 and 4 of the killed run are gone: each step once, the resumed values after step 2.
    assert [(e.step, e.value) for e in events] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0), (5, 50.0)]
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.csv")] == [1, 2, 3, 4, 5]


def test_histograms_are_real_histogram_events(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.csv", tmp_path / "tb")
    w = torch.tensor([[-2.0, 0.5], [1.0, float("nan")]])
    log.histograms([("weights/w", w), ("weights/bad", torch.full((3,), float("inf")))], step=7)
    ea = _events(tmp_path / "tb")
    assert ea.Tags()["histograms"] == ["weights/w"]  # an all-infinite tensor has no histogram
    (event,) = ea.Histograms("weights/w")
    h = event.histogram_value
    assert event.step == 7
    assert (h.num, h.min, h.max, h.sum) == (3, -2.0, 1.0, pytest.approx(-0.5))  # the NaN is left out
    assert h.sum_squares == pytest.approx(4.0 + 0.25 + 1.0)
    log.close()


def test_without_tensorboard_nothing_is_written(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.csv", None)
    log.log({"epoch": 1, "step": 1, "time": 0.0, "val/acc": 0.5})
    log.histograms([("weights/w", torch.ones(2))], step=1)
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
