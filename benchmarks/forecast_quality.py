"""Neural forecasters against the baselines a user would try first, on the same test span, in one run.

* sunspots (statsmodels, yearly 1700–2008): one-step-ahead forecasts of the last 30 years.
* airline passengers (monthly 1949–1960): one 24-month forecast from the end of 1958, on log values.

The neural forecaster (``rnn_forecaster``, an LSTM; trained through the engine) is chosen among a few
sizes and window normalisations by its validation RMSE, on the span before the test span. Baselines, fitted on everything before
the test span: the naive forecast (the last value), the seasonal naive (the value one season back:
11 years for sunspots, 12 months for airline), and statsmodels' ARIMA (sunspots, order by AIC over
p, q ≤ 3, d ≤ 1) or SARIMA with period 12 on log values (airline, order by AIC over a small grid).
One-step ARIMA forecasts over the test span keep the fitted parameters and condition on the observed
past (``results.apply``). Metrics in the series' units: RMSE, MAE and MASE (MAE over the in-sample MAE
of the seasonal-naive one-step forecast on the training span), per horizon for airline.

Usage: ``python benchmarks/forecast_quality.py [--data-dir D] [--series sunspots airline]``
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.data import timeseries as ts  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402

SETUPS = {
    "sunspots": {
        "recipe": "sunspots-lstm",
        "args": {"name": "sunspots", "input_len": 12, "horizon": 1, "val_len": 30, "test_len": 30},
        "season": 11,
        "candidates": [
            ["model.args.hidden_size=16"],
            ["model.args.hidden_size=32"],
            ["model.args.hidden_size=64"],
            ["model.args.hidden_size=32", "model.args.skip=true"],
        ],
    },
    "airline": {
        "recipe": "airline-lstm",
        # 36 validation months: 13 forecast origins, where 24 gave one window, whose error picked
        # models that fit the level just before it rather than ones that extrapolate the trend
        "args": {"name": "airline", "input_len": 24, "horizon": 24, "val_len": 36, "test_len": 24, "log": True},
        "season": 12,
        "candidates": [
            ["model.args.hidden_size=16"],
            ["model.args.hidden_size=32"],
            ["model.args.hidden_size=32", "model.args.skip=true"],
            ["model.args.hidden_size=16", "model.args.skip=true", "train.epochs=400"],
            ["model.args.hidden_size=16", "model.args.norm=last"],
            ["model.args.hidden_size=32", "model.args.norm=last"],
            ["model.args.hidden_size=16", "model.args.norm=last", "model.args.skip=true"],
            ["model.args.hidden_size=16", "model.args.norm=mean", "model.args.skip=true"],
        ],
    },
}


def raw_series(name: str, data_dir: str | None) -> np.ndarray:
    """The whole series in its own units, read as the dataset reads it (before log and standardisation)."""
    from archzoo.data.root import data_root

    if name in ts.BUILTIN:
        values, _ = ts._statsmodels(name)
    else:
        rel, col = ts.CSV_SERIES[name]
        values, _ = ts.read_csv_series(data_root(data_dir) / rel, col)
    return np.asarray(values, dtype=np.float64)


def metrics(pred: np.ndarray, true: np.ndarray, scale: float) -> dict[str, float]:
    err = pred - true
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mase": float(np.mean(np.abs(err)) / scale),
    }


def _fit(setup: dict[str, Any], extra: list[str], data_dir: str | None, threads: int) -> tuple[Trainer, dict]:
    cfg = load_config(setup["recipe"], None, [*extra, "log.progress=none", "log.plots=false",
                                              "log.tensorboard=false", f"train.threads={threads}",
                                              "log.dir=runs/benchmarks/forecast"])  # fmt: skip
    tr = Trainer(cfg, data_dir=data_dir)
    return tr, tr.fit()


def _test_forecast(tr: Trainer) -> np.ndarray:
    """The trained model's forecasts of the test span, in the series' units."""
    x, _ = next(iter(tr.data.test.batches(10_000)))
    with torch.no_grad():
        p = tr.task.predict(tr.model.eval(), (x,)).numpy()  # standardised -> (log-)units
    return np.exp(p) if tr.info["transform"] == "log" else p


def neural(setup: dict[str, Any], data_dir: str | None, threads: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Train each candidate, keep the lowest validation RMSE; its test forecasts in the series' units."""
    best = None
    tried = []
    for extra in setup["candidates"]:
        tr, res = _fit(setup, extra, data_dir, threads)
        tried.append({"overrides": extra, "val_rmse": res["val/rmse"], "run_dir": str(tr.run_dir)})
        if best is None or res["val/rmse"] < best[0]:
            best = (res["val/rmse"], tr, extra)
    _, tr, extra = best
    info = {"chosen": extra, "candidates": tried, "parameters": sum(q.numel() for q in tr.model.parameters())}
    return _test_forecast(tr), info


def arima_one_step(train: np.ndarray, full: np.ndarray, n_test: int) -> tuple[np.ndarray, str]:
    from statsmodels.tsa.arima.model import ARIMA

    best = None
    for p, d, q in itertools.product(range(4), range(2), range(4)):
        try:
            res = ARIMA(train, order=(p, d, q)).fit()
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or res.aic < best[0]:
            best = (res.aic, (p, d, q), res)
    _, order, res = best
    applied = res.apply(full)  # the fitted parameters, conditioned on the observed series
    pred = applied.predict(start=len(full) - n_test, end=len(full) - 1)
    return np.asarray(pred), f"ARIMA{order}"


def sarima_forecast(train_log: np.ndarray, steps: int) -> tuple[np.ndarray, str]:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    best = None
    for (p, d, q), (sp, sd, sq) in itertools.product(
        [(0, 1, 1), (1, 1, 0), (1, 1, 1), (2, 1, 1)], [(0, 1, 1), (1, 1, 0), (1, 1, 1)]
    ):
        try:
            res = SARIMAX(train_log, order=(p, d, q), seasonal_order=(sp, sd, sq, 12)).fit(disp=False)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or res.aic < best[0]:
            best = (res.aic, f"SARIMA({p},{d},{q})({sp},{sd},{sq},12)", res)
    _, name, res = best
    return np.exp(np.asarray(res.forecast(steps))), name


def run(name: str, data_dir: str | None, threads: int) -> dict[str, Any]:
    setup = SETUPS[name]
    args = setup["args"]
    s = raw_series(name, data_dir)
    n_test, m = args["test_len"], setup["season"]
    fit_end = len(s) - n_test  # the baselines fit on everything before the test span
    train_only = s[: len(s) - n_test - args["val_len"]]
    scale = float(np.mean(np.abs(train_only[m:] - train_only[:-m])))  # seasonal-naive in-sample MAE
    true = s[fit_end:]
    nn_pred, nn_info = neural(setup, data_dir, threads)
    rows: dict[str, Any] = {}
    if args["horizon"] == 1:
        rows["neural"] = metrics(nn_pred.reshape(-1), true, scale)
        rows["naive"] = metrics(s[fit_end - 1 : -1], true, scale)
        rows["seasonal_naive"] = metrics(s[fit_end - m : len(s) - m], true, scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ar, ar_name = arima_one_step(s[:fit_end], s, n_test)
        rows["arima"] = {**metrics(ar, true, scale), "model": ar_name}
    else:
        forecast = nn_pred.reshape(-1)[: len(true)]
        rows["neural"] = metrics(forecast, true, scale)
        rows["naive"] = metrics(np.full(len(true), s[fit_end - 1]), true, scale)
        rows["seasonal_naive"] = metrics(np.tile(s[fit_end - m : fit_end], math.ceil(len(true) / m))[: len(true)],
                                         true, scale)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sar, sar_name = sarima_forecast(np.log(s[:fit_end]), len(true))
        rows["arima"] = {**metrics(sar, true, scale), "model": sar_name}
        rows["neural"]["abs_error_per_horizon"] = [round(float(v), 2) for v in np.abs(forecast - true)]
        rows["arima"]["abs_error_per_horizon"] = [round(float(v), 2) for v in np.abs(sar - true)]
    best_baseline = min(("naive", "seasonal_naive", "arima"), key=lambda k: rows[k]["rmse"])
    beats = rows["neural"]["rmse"] < min(rows["naive"]["rmse"], rows["arima"]["rmse"])
    summary = ", ".join(f"{k} {v['rmse']:.2f}" for k, v in rows.items())
    print(f"{name}: RMSE {summary}")
    return {
        "series": name,
        "setup": args,
        "season": m,
        "results": rows,
        "neural": nn_info,
        "best_baseline": best_baseline,
        "target": "neural RMSE below the naive forecast and ARIMA/SARIMA",
        "meets_target": bool(beats),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir")
    p.add_argument("--series", nargs="+", default=list(SETUPS))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for name in a.series:
        write_result(f"forecast-{name}", run(name, a.data_dir, a.threads))


if __name__ == "__main__":
    main()
