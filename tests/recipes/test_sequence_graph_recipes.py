"""The sequence and graph recipes: their data, model and task fit together, and each trains end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine.builders import build_data, build_model, build_task

# Each recipe, with overrides that shrink its data to a test's size.
SMALL = {
    "python-lstm": ["data.args.max_chars=20000", "data.batch_size=8", "data.eval_batch_size=8"],
    "parity-gru": ["data.args.n=200"],
    "karate-gcn": [],
    "shapes-gcn": ["data.args.n_graphs=60"],
    "sum10-lstm": ["data.args.n=200"],
}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("recipe", list(SMALL))
def test_recipe_parts_fit_and_take_a_step(recipe: str, step_context: type) -> None:
    """Built as the engine builds them (model arguments from ``info``), without the engine's loop."""
    torch.manual_seed(0)
    cfg = load_config(recipe, None, SMALL[recipe])
    bundle = build_data(cfg)  # as the engine builds them
    info = bundle.info
    model = build_model(cfg, info)
    task = build_task(cfg)
    task.setup(model, info, torch.device("cpu"))
    task.start_epoch(0)
    for i, batch in enumerate(bundle.train.batches(cfg.data.train_batch, shuffle=True)):
        logs = task.training_step(model, batch, step_context(model))
        assert torch.isfinite(logs["loss"]) and int(task.count(batch)) > 0
        if i == 1:
            break
    model.eval()
    with torch.no_grad():
        for batch in bundle.val.batches(cfg.data.eval_batch):
            task.eval_step(model, batch, "val")
    metrics = task.compute("val")
    assert (cfg.train.monitor or task.monitor) in metrics


@pytest.mark.parametrize("recipe", list(SMALL))
def test_recipe_trains_end_to_end(recipe: str, tmp_path: Path) -> None:
    from archzoo.cli import main

    run = tmp_path / recipe
    args = ["train", recipe, "train.epochs=1", "log.progress=none", "log.plots=false", "log.tensorboard=false"]
    rc = main([*args, "train.threads=1", *SMALL[recipe], "--run-dir", str(run)])
    assert rc == 0
    metrics = json.loads((run / "results.json").read_text())["metrics"]
    key = {"python-lstm": "test/loss", "sum10-lstm": "test/nrmse"}.get(recipe, "test/acc")
    assert key in metrics


#: The modules whose models recur over time: their recipes clip gradients (issue 15).
RECURRENT = ("archzoo.models.rnn", "archzoo.models.seq2seq", "archzoo.models.forecast", "archzoo.models.convlstm")


def test_every_recurrent_recipe_clips_its_gradients() -> None:
    from archzoo.config import recipe_names
    from archzoo.registry import MODELS

    recurrent = []
    for name in recipe_names():
        cfg = load_config(name)
        if MODELS.get(cfg.model.name).__module__.startswith(RECURRENT):
            recurrent.append(name)
            assert cfg.train.grad_clip and cfg.train.grad_clip > 0, f"{name} trains a recurrent model without grad_clip"
    assert {"ptb-lstm", "parity-gru", "sort-gru", "moving-convlstm", "sunspots-lstm"} <= set(recurrent)
