"""The irregular-series recipes (ODE-RNN and its GRU-Δt baseline) train a few steps through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Small data for a test: few sine waves or one draw of the sunspot windows, two steps.
SMALL = {
    "irregular-sine-odernn": ["data.args.n=40", "data.args.window=20", "data.args.observed=8",
                              "data.args.observed_min=4", "data.args.extrapolate=4"],
    "irregular-sine-grudt": ["data.args.n=40"],
    "irregular-sunspots-odernn": ["data.args.draws=1", "data.args.window=12", "data.args.observed=6", "data.args.observed_min=3",
                                  "data.args.extrapolate=4", "data.batch_size=40"],
    "irregular-sunspots-grudt": ["data.args.draws=1"],
}  # fmt: skip


@pytest.mark.parametrize("recipe", list(SMALL))
def test_recipe_trains_through_the_engine(recipe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archzoo.cli import main

    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    run = tmp_path / recipe
    args = ["train", recipe, "train.epochs=1", "train.max_steps=2", "log.progress=none", "log.plots=false"]
    rc = main([*args, "log.tensorboard=false", "train.threads=1", *SMALL[recipe], "--run-dir", str(run)])
    assert rc == 0
    metrics = json.loads((run / "results.json").read_text())["metrics"]
    assert {"test/interp_mse", "test/extrap_mse", "val/mse"} <= set(metrics)
