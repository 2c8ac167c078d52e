"""Real series in chronological windows: spans, training-span scaling, missing values and bad files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from archzoo.data.timeseries import fill_missing, read_csv_series, series
from archzoo.errors import UserError


def _csv(tmp_path: Path, values: list[str], header: str = "Month,Passengers") -> Path:
    p = tmp_path / "s.csv"
    p.write_text(header + "\n" + "\n".join(f"2000-{i + 1:02d},{v}" for i, v in enumerate(values)) + "\n")
    return p


def test_sunspots_spans_and_training_scaling() -> None:
    b = series("sunspots", input_len=12, val_len=30, test_len=30)
    assert b.info["spans"] == [[0, 249], [249, 279], [279, 309]]
    assert (len(b.train), len(b.val), len(b.test)) == (249 - 12, 30, 30)
    # Standardised with the training span alone: its mean is 0 there, not over the whole series.
    z = b.train.series
    assert abs(float(z[:249].mean())) < 1e-5 and abs(float(z.mean())) > 1e-3
    # Every test target is one of the last 30 years, and the last window's target is 2008's value.
    xs, ys = next(iter(b.test.batches(100)))
    assert ys.shape == (30, 1) and xs.shape == (30, 12)
    last = ys[-1, 0] * b.info["target_std"] + b.info["target_mean"]
    assert float(last) == pytest.approx(2.9, abs=1e-3)


def test_missing_values_are_refused_or_filled() -> None:
    with pytest.raises(UserError, match=r"59 missing values .*data.args.fill=interpolate"):
        series("co2")
    b = series("co2", fill="interpolate", input_len=52, val_len=104, test_len=104)
    assert not torch.isnan(b.train.series).any()
    v = torch.tensor([1.0, math.nan, 3.0, math.nan, math.nan, 9.0])
    assert fill_missing(v, "interpolate", "x").tolist() == [1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
    assert fill_missing(v, "ffill", "x").tolist() == [1.0, 1.0, 3.0, 3.0, 3.0, 9.0]


def test_csv_errors_are_one_sentence(tmp_path: Path) -> None:
    p = _csv(tmp_path, ["1", "2", "x"])
    with pytest.raises(UserError, match="line 4: 'x' in column 'Passengers' is not a number"):
        read_csv_series(p, "Passengers")
    with pytest.raises(UserError, match="has no column 'Sales'; its columns are Month, Passengers"):
        read_csv_series(p, "Sales")
    with pytest.raises(UserError, match="does not exist"):
        read_csv_series(tmp_path / "none.csv", "Passengers")
    q = _csv(tmp_path, ["0", *[str(i) for i in range(1, 80)]])
    with pytest.raises(UserError, match="values ≤ 0"):
        series(path=str(q), log=True, val_len=5, test_len=5)
    with pytest.raises(UserError, match="too few for windows"):
        series(path=str(_csv(tmp_path, ["1", "2", "3", "4"])), input_len=3, val_len=1, test_len=1)


def test_airline_direct_forecast_window(data_root: Path) -> None:
    b = series("airline", data_dir=str(data_root), input_len=24, horizon=24, val_len=24, test_len=24, log=True)
    x, y = next(iter(b.test.batches(10)))
    assert x.shape == (1, 24) and y.shape == (1, 24)  # one 24-month forecast of 1959-1960 from 1957-1958
    first = math.exp(float(y[0, 0]) * b.info["target_std"] + b.info["target_mean"])
    assert first == pytest.approx(360, abs=0.5)  # January 1959


@pytest.mark.parametrize("val_len", [0, 23])
def test_a_validation_span_without_a_window_is_refused(data_root: Path, val_len: int) -> None:
    with pytest.raises(UserError, match="val_len must be at least the horizon"):
        series("airline", data_dir=str(data_root), input_len=24, horizon=24, val_len=val_len, test_len=24)
