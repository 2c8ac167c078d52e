r"""Real time series for forecasting, in chronological windows.

Series: statsmodels' yearly sunspot numbers (1700–2008) and weekly Mauna Loa CO₂
(1958–2001), which ship inside statsmodels, and the 2-column CSVs under
``<data root>/timeseries`` (monthly airline passengers 1949–1960, daily minimum
temperatures in Melbourne 1981–1990), or any CSV with ``data.args.path`` and
``data.args.column``.

The last ``test_len`` steps are the test targets and the ``val_len`` steps
before them validate (:func:`~archzoo.data.splits.chronological_spans`); every
window's target lies inside its span, and its inputs may reach back into earlier
data, as a forecaster would have them. Values are optionally log-transformed,
then standardised with the **training span's** mean and standard deviation
alone; the regression task reports metrics in the (log-)series' units through
``target_mean``/``target_std``, and ``info["transform"]`` says how to undo it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch

from archzoo.data.root import data_root
from archzoo.data.splits import DataBundle, SeriesWindows, chronological_spans
from archzoo.errors import UserError
from archzoo.registry import register_dataset

#: Series shipped with statsmodels, and the CSVs of the data root (file, value column).
BUILTIN = ("sunspots", "co2")
CSV_SERIES = {
    "airline": ("timeseries/airline-passengers.csv", "Passengers"),
    "min_temps": ("timeseries/daily-min-temperatures.csv", "Temp"),
}
FILLS = ("none", "interpolate", "ffill")


def _statsmodels(name: str) -> tuple[list[float], list[str]]:
    try:
        import statsmodels.api as sm
    except ImportError:
        raise UserError(
            f"The {name} series ships with statsmodels; install it with 'pip install statsmodels'."
        ) from None
    if name == "sunspots":
        d = sm.datasets.sunspots.load_pandas().data
        return d["SUNACTIVITY"].astype(float).tolist(), [str(int(y)) for y in d["YEAR"]]
    d = sm.datasets.co2.load_pandas().data
    return d["co2"].astype(float).tolist(), [str(t.date()) for t in d.index]


def read_csv_series(path: Path, column: str) -> tuple[list[float], list[str]]:
    """The values of ``column`` (the first column is the time stamp); blanks and 'NaN' become NaN."""
    if not path.is_file():
        raise UserError(f"Series file {path} does not exist; set data.args.path or the data root (ARCHZOO_DATA).")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 at byte {e.start}.") from None
    if not rows:
        raise UserError(f"{path} is empty.")
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise UserError(f"{path} has no column '{column}'; its columns are {', '.join(header)}.")
    j = header.index(column)
    values, stamps = [], []
    for i, r in enumerate(rows[1:], start=2):
        if not r:
            continue
        text = r[j].strip() if j < len(r) else ""
        try:
            values.append(float(text) if text else math.nan)
        except ValueError:
            raise UserError(f"{path} line {i}: '{text}' in column '{column}' is not a number.") from None
        stamps.append(r[0])
    return values, stamps


def fill_missing(values: torch.Tensor, fill: str, name: str) -> torch.Tensor:
    """Refuse NaNs (``fill='none'``), or fill them by linear interpolation or the last value seen."""
    bad = torch.isnan(values)
    if not bad.any():
        return values
    if fill == "none":
        first = int(bad.nonzero()[0])
        raise UserError(
            f"Series '{name}' has {int(bad.sum())} missing values (the first at step {first}); "
            "set data.args.fill=interpolate or data.args.fill=ffill."
        )
    good = (~bad).nonzero().squeeze(1)
    if len(good) == 0:
        raise UserError(f"Series '{name}' has no values at all.")
    idx = torch.arange(len(values))
    if fill == "ffill":
        last = torch.cummax(torch.where(bad, torch.zeros_like(idx), idx), 0).values
        out = values[last]
        return torch.where(torch.isnan(out), values[good[0]], out)  # leading gaps take the first value
    # Linear interpolation between the known neighbours (ends held flat).
    pos = torch.searchsorted(good, idx).clamp(1, len(good) - 1) if len(good) > 1 else torch.zeros_like(idx)
    if len(good) == 1:
        return torch.full_like(values, float(values[good[0]]))
    lo, hi = good[pos - 1], good[pos]
    w = ((idx - lo).float() / (hi - lo).float()).clamp(0, 1)
    return values[lo] + w * (values[hi] - values[lo])


@register_dataset("series")
def series(
    name: str = "sunspots",
    path: str | None = None,
    column: str | None = None,
    input_len: int = 12,
    horizon: int = 1,
    val_len: int = 30,
    test_len: int = 30,
    log: bool = False,
    fill: str = "none",
    data_dir: str | None = None,
) -> DataBundle:
    """A real series as chronological windows (see the module docstring).

    Args:
        name: ``sunspots`` (yearly), ``co2`` (weekly), ``airline`` (monthly), ``min_temps`` (daily),
            or any name with ``path`` (default sunspots).
        path: a CSV file of ``time,value`` columns (instead of a named series).
        column: the CSV's value column (default: the named series', else the second column).
        input_len: past steps a forecast sees (default 12).
        horizon: steps forecast at once, directly (default 1).
        val_len: steps of validation targets before the test span, at least ``horizon`` (default 30).
        test_len: the last steps, the test targets (default 30).
        log: forecast :math:`\\log y` (a multiplicative seasonality becomes additive).
        fill: ``none`` refuses missing values; ``interpolate`` or ``ffill`` fills them.
    """
    if fill not in FILLS:
        raise UserError(f"data.args.fill must be one of {', '.join(FILLS)}, got '{fill}'.")
    if path is not None:
        p = Path(path)
        if column is None:
            with open(p, newline="", encoding="utf-8", errors="replace") as f:
                header = next(csv.reader(f), [])
            if len(header) < 2:
                raise UserError(f"{p} needs a time column and a value column; name it with data.args.column.")
            column = header[1].strip()
        values, stamps = read_csv_series(p, column)
        name = p.stem
    elif name in BUILTIN:
        values, stamps = _statsmodels(name)
    elif name in CSV_SERIES:
        rel, col = CSV_SERIES[name]
        values, stamps = read_csv_series(data_root(data_dir) / rel, column or col)
    else:
        known = ", ".join((*BUILTIN, *CSV_SERIES))
        raise UserError(f"Unknown series '{name}'; use one of {known}, or data.args.path=FILE.csv.")
    s = fill_missing(torch.tensor(values, dtype=torch.float32), fill, name)
    if log:
        if (s <= 0).any():
            raise UserError(f"Series '{name}' has values ≤ 0, so data.args.log=true cannot take their logarithm.")
        s = s.log()
    n = len(s)
    if min(input_len, horizon, test_len) < 1:
        raise UserError("data.args.input_len, horizon and test_len must be at least 1.")
    if val_len < horizon:
        raise UserError(
            f"data.args.val_len must be at least the horizon ({horizon}), got {val_len}: "
            "every run validates on at least one window of targets."
        )
    spans = chronological_spans(n, val_len, test_len)
    train_end = spans[0][1]
    if train_end - input_len - horizon + 1 < 2:
        raise UserError(
            f"Series '{name}' has {n} steps: too few for windows of {input_len} inputs and {horizon} targets "
            f"before its {val_len} validation and {test_len} test steps."
        )
    mean, std = float(s[:train_end].mean()), float(s[:train_end].std())
    z = (s - mean) / max(std, 1e-12)  # the training span's statistics only
    train, val, test = (SeriesWindows(z, input_len, horizon, a, b) for a, b in spans)
    info: dict[str, Any] = {
        "kind": "series",
        "series": name,
        "in_features": input_len,
        "out_features": horizon,
        "input_len": input_len,
        "horizon": horizon,
        "target_mean": mean,
        "target_std": std,
        "transform": "log" if log else "none",
        "spans": [list(sp) for sp in spans],
        "stamps": [stamps[0], stamps[-1]],
    }
    return DataBundle(train, val, test if len(test) else None, info)
