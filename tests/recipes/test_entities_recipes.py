"""The R-GCN recipes: data, model and task fit and step; aifb-rgcn trains end to end through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine.builders import build_data, build_model, build_task

QUICK = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:  # one cache for the module: each graph is parsed once
        mp.setenv("ARCHZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.mark.parametrize("recipe", ["aifb-rgcn", pytest.param("mutag_entities-rgcn", marks=pytest.mark.slow)])
def test_entity_recipe_parts_fit_and_take_two_steps(recipe: str, data_root: Path, step_context: type) -> None:
    torch.manual_seed(0)
    cfg = load_config(recipe, None, [f"data.dir={data_root}"])
    assert (cfg.train.monitor, cfg.train.mode, cfg.train.epochs) == ("val/loss", "min", 50)
    bundle = build_data(cfg)
    model = build_model(cfg, bundle.info)
    assert model.num_nodes == bundle.info["num_nodes"] and model.num_relations == bundle.info["num_relations"]
    task = build_task(cfg)
    task.setup(model, bundle.info, torch.device("cpu"))
    batch = next(iter(bundle.train.batches(1)))
    losses = [float(task.training_step(model, batch, step_context(model))["loss"]) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    model.eval()
    with torch.no_grad():
        task.eval_step(model, next(iter(bundle.val.batches(1))), "val")
    assert 0.0 <= task.compute("val")["val/acc"] <= 1.0


@pytest.mark.slow
def test_aifb_rgcn_trains_end_to_end(data_root: Path, tmp_path: Path) -> None:
    from archzoo.cli import main

    run = tmp_path / "aifb-rgcn"
    rc = main(["train", "aifb-rgcn", "train.epochs=20", *QUICK, "--data-dir", str(data_root), "--run-dir", str(run)])
    assert rc == 0
    results = json.loads((run / "results.json").read_text())
    assert results["monitor"] == "val/loss" and 1 <= results["best_epoch"] <= 20
    assert results["metrics"]["test/acc"] > 0.7  # 20 full-graph epochs already separate most groups
