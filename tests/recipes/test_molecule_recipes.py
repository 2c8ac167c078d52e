"""The molecule recipes: data, model and task fit together and take training steps (on the real CSVs where present)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine.builders import build_data, build_model, build_task

RECIPES = ["tpsa-mpnn", "esol-mpnn", "freesolv-mpnn", "lipo-mpnn", "bbbp-mpnn"]
SMALL = ["data.args.max_molecules=80", "model.args.hidden=16"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_parts_fit_and_take_a_step(recipe: str, step_context: type, request: pytest.FixtureRequest) -> None:
    if recipe != "tpsa-mpnn":
        request.getfixturevalue("data_root")  # skips without the benchmark data
    torch.manual_seed(0)
    cfg = load_config(recipe, None, SMALL)
    bundle = build_data(cfg)
    info = bundle.info
    assert info["kind"] == "graphs" and info["rows"] == 80
    model = build_model(cfg, info)
    task = build_task(cfg)
    task.setup(model, info, torch.device("cpu"))
    for i, batch in enumerate(bundle.train.batches(cfg.data.train_batch, shuffle=True)):
        logs = task.training_step(model, batch, step_context(model, lr=0.01))
        assert torch.isfinite(logs["loss"]) and task.count(batch) == batch.num_graphs
        if i == 1:
            break
    model.eval()
    with torch.no_grad():
        for batch in bundle.val.batches(cfg.data.eval_batch):
            task.eval_step(model, batch, "val")
    metrics = task.compute("val")
    assert cfg.train.monitor in metrics
