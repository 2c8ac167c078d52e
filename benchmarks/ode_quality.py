"""ODE-RNN against a GRU that reads the time gaps, on irregularly sampled series, in one run.

For each series (random sine waves; yearly sunspots, windows split chronologically) both recipes,
``irregular-<series>-odernn`` and ``irregular-<series>-grudt``, are trained through the engine on the
same data (the same ``irregular_series`` arguments and data seed): each sees the observed points of a
window and predicts the held-out points inside it (interpolation) and the points after it
(extrapolation). Reported: test MSE of each kind (on the data's scale: raw for sine, standardised by
the training span for sunspots; RMSE in the series' units beside it), parameters, epochs and training seconds; beside them the MSE of
predicting the training mean (0 on that scale), for scale. No target: the figures are reported as
measured. One test window of each series is drawn to ``benchmarks/results/ode-<series>.png``.

Usage: ``python benchmarks/ode_quality.py [--series sine sunspots] [--threads 1] [--set train.epochs=5 ...]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402

MODELS = {"odernn": "ODE-RNN", "grudt": "GRU-Δt"}


def train(recipe: str, threads: int, extra: list[str]) -> tuple[Trainer, dict[str, Any]]:
    overrides = [*extra, "log.progress=none", "log.plots=false", "log.tensorboard=false",
                 f"train.threads={threads}", "log.dir=runs/benchmarks/ode"]  # fmt: skip
    tr = Trainer(load_config(recipe, None, overrides))
    tr.fit()
    res = json.loads((Path(tr.run_dir) / "results.json").read_text())
    m = res["metrics"]
    row = {
        "recipe": recipe,
        "model": tr.cfg.model.name,
        "interp_mse": m["test/interp_mse"],
        "extrap_mse": m["test/extrap_mse"],
        "mse": m["test/mse"],
        "val_mse": m["val/mse"],
        "parameters": res["parameters"],
        "epochs_run": res["epochs_run"],
        "train_seconds": res["train_seconds"],
        "stopped_for_time": res["stopped_for_time"],
        "run_dir": str(tr.run_dir),
    }
    std = float(tr.info["target_std"])  # RMSE in the series' own units (sunspot numbers)
    row["interp_rmse_units"], row["extrap_rmse_units"] = (row[k] ** 0.5 * std for k in ("interp_mse", "extrap_mse"))
    print(f"{recipe}: test interp MSE {row['interp_mse']:.4f}, extrap MSE {row['extrap_mse']:.4f}, "
          f"{row['parameters']:,} params, {row['train_seconds']:.0f} s")  # fmt: skip
    return tr, row


def mean_baseline(tr: Trainer) -> dict[str, float]:
    """Test MSE of predicting the training mean (0 on the data's scale) at every query."""
    _, _, _, _, q_y, kind = tr.data.test.tensors
    return {"interp_mse": float(q_y[kind == 1].square().mean()), "extrap_mse": float(q_y[kind == 2].square().mean())}


def plot(series: str, trainers: dict[str, Trainer], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    any_tr = next(iter(trainers.values()))
    batch = tuple(t[:1] for t in any_tr.data.test.tensors)  # the first test window
    obs_t, obs_x, obs_m, q_t, q_y, kind = batch
    std, mean = any_tr.info["target_std"], any_tr.info["target_mean"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    valid = kind[0] > 0
    order = q_t[0][valid].argsort()
    ax.plot(q_t[0][valid][order], (q_y[0][valid] * std + mean)[order], ".", color="0.6", label="held out (truth)")
    m = obs_m[0] > 0
    ax.plot(obs_t[0][m], obs_x[0][m] * std + mean, "ko", ms=4, label="observed")
    for key, tr in trainers.items():
        with torch.no_grad():
            p = tr.task.predict(tr.model.eval(), batch)[0][valid][order]
        ax.plot(q_t[0][valid][order], p, "-", label=MODELS[key])
    ax.axvline(1.0, color="0.8", ls="--", lw=1)
    ax.set_xlabel("time (window = [0, 1])")
    ax.set_title(f"irregular {series}: one test window")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def run(series: str, threads: int, extra: list[str]) -> dict[str, Any]:
    rows, trainers = {}, {}
    for key in MODELS:
        trainers[key], rows[key] = train(f"irregular-{series}-{key}", threads, extra)
    tr = trainers["odernn"]
    rows["train_mean"] = mean_baseline(tr)
    plot(series, trainers, RESULTS / f"ode-{series}.png")
    info = {k: tr.info[k] for k in ("window", "observed", "observed_min", "extrapolate", "draws")}
    return {
        "series": series,
        "data": dict(tr.cfg.data.args),
        "setup": info,
        "sizes": {s: len(tr.data.split(s)) for s in ("train", "val", "test")},
        "results": rows,
        "scale": "raw values" if series == "sine" else "standardised by the training span's mean and std",
        "target": None,
        "meets_target": None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", nargs="+", default=["sine", "sunspots"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], dest="overrides", help="dotted overrides for every recipe")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for s in a.series:
        write_result(f"ode-{s}", run(s, a.threads, a.overrides))


if __name__ == "__main__":
    main()
