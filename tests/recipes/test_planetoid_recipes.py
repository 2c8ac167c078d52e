"""The Planetoid recipes: data, model and task fit and step; cora-gcn trains end to end; scratch layers swap in."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine.builders import build_data, build_model, build_task

RECIPES = ["cora-gcn", "cora-gat", "cora-appnp", "cora-sage", "citeseer-gcn", "citeseer-gat"]
QUICK = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]


@pytest.fixture(scope="module")
def planetoid_root() -> Path:
    root = Path(os.environ.get("ARCHZOO_DATA", ""))
    if not (root / "planetoid" / "CiteSeer" / "raw").is_dir():
        pytest.skip("ARCHZOO_DATA has no planetoid/ (see ../shared/data/MANIFEST.md)")
    return root


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:  # one cache for the module: each graph is processed once
        mp.setenv("ARCHZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.mark.parametrize("recipe", RECIPES)
def test_planetoid_recipe_parts_fit_and_take_two_steps(recipe: str, planetoid_root: Path, step_context: type) -> None:
    torch.manual_seed(0)
    cfg = load_config(recipe, None, [f"data.dir={planetoid_root}"])
    assert (cfg.train.monitor, cfg.train.mode) in (("val/acc", "max"), ("val/loss", "min"))
    bundle = build_data(cfg)
    info = bundle.info
    model = build_model(cfg, info)
    task = build_task(cfg)
    task.setup(model, info, torch.device("cpu"))
    batch = next(iter(bundle.train.batches(1)))
    losses = [float(task.training_step(model, batch, step_context(model))["loss"]) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    model.eval()
    with torch.no_grad():
        task.eval_step(model, next(iter(bundle.val.batches(1))), "val")
    assert 0.0 <= task.compute("val")["val/acc"] <= 1.0


@pytest.mark.parametrize("recipe", ["cora-gcn", "cora-gat"])
def test_the_scratch_layers_swap_in_for_pyg_in_a_recipe(recipe: str, planetoid_root: Path) -> None:
    cfg = load_config(recipe, None, [f"data.dir={planetoid_root}"])
    info = build_data(cfg).info
    torch.manual_seed(0)
    pyg = build_model(cfg, info).eval()
    scratch = build_model(load_config(recipe, None, [f"data.dir={planetoid_root}", "model.args.impl=scratch"]), info)
    scratch.load_state_dict({k.replace("lin.", ""): v for k, v in pyg.state_dict().items()})
    data = next(iter(build_data(cfg).test.batches(1)))
    torch.testing.assert_close(scratch.eval()(data), pyg(data), atol=1e-5, rtol=0)


def test_cora_gcn_trains_end_to_end_and_keeps_the_best_validation_epoch(planetoid_root: Path, tmp_path: Path) -> None:
    from archzoo.cli import main

    run = tmp_path / "cora-gcn"
    rc = main(
        ["train", "cora-gcn", "train.epochs=30", *QUICK, "--data-dir", str(planetoid_root), "--run-dir", str(run)]
    )
    assert rc == 0
    results = json.loads((run / "results.json").read_text())
    assert results["monitor"] == "val/acc" and 1 <= results["best_epoch"] <= 30
    assert results["metrics"]["test/acc"] > 0.6  # 30 epochs already learn most of Cora
