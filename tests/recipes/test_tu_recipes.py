"""The MUTAG recipes (GIN, GCN, the edge-aware MPNN): data, model and task fit and step; mutag-gin trains end to end; the scratch GIN swaps in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from archzoo.cli import main
from archzoo.config import load_config
from archzoo.engine.builders import build_data, build_model, build_task
from archzoo.errors import UserError

QUICK = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:  # one cache for the module: MUTAG is processed once
        mp.setenv("ARCHZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.mark.parametrize("recipe", ["mutag-gin", "mutag-gcn", "mutag-mpnn"])
def test_mutag_recipe_parts_fit_and_take_two_steps(recipe: str, mutag_root: Path, step_context: type) -> None:
    torch.manual_seed(0)
    cfg = load_config(recipe, None, [f"data.dir={mutag_root}"])
    bundle = build_data(cfg)
    model = build_model(cfg, bundle.info)
    if recipe == "mutag-mpnn":  # the bond types reach the edge-aware messages
        assert model.num_edge_features == bundle.info["num_edge_features"] == 4
    task = build_task(cfg)
    task.setup(model, bundle.info, torch.device("cpu"))
    batches = bundle.train.batches(cfg.data.train_batch, shuffle=True)
    losses = [float(task.training_step(model, next(batches), step_context(model))["loss"]) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    model.eval()
    with torch.no_grad():
        for batch in bundle.val.batches(cfg.data.eval_batch):
            task.eval_step(model, batch, "val")
    assert 0.0 <= task.compute("val")["val/acc"] <= 1.0


def test_mutag_gin_trains_end_to_end_on_another_fold(mutag_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "mutag-gin", "train.epochs=2", "data.args.fold=7", f"data.dir={mutag_root}", *QUICK]
    assert main([*args, "--run-dir", str(run)]) == 0
    summary = json.loads((run / "results.json").read_text())
    assert summary["epochs_run"] == 2 and 0.0 <= summary["metrics"]["test/acc"] <= 1.0
    assert json.loads((run / "info.json").read_text())["fold"] == 7


def test_the_scratch_gin_swaps_in_for_pyg(mutag_root: Path) -> None:
    cfg = load_config("mutag-gin", None, [f"data.dir={mutag_root}"])
    bundle = build_data(cfg)
    torch.manual_seed(0)
    pyg = build_model(cfg, bundle.info).eval()
    scratch = build_model(
        load_config("mutag-gin", None, [f"data.dir={mutag_root}", "model.args.impl=scratch"]), bundle.info
    )
    scratch.load_state_dict(pyg.state_dict(), strict=True)
    batch = next(iter(bundle.test.batches(256)))
    with torch.no_grad():
        torch.testing.assert_close(scratch.eval()(batch), pyg(batch), atol=1e-5, rtol=0)


def test_options_the_dataset_does_not_take_are_refused(mutag_root: Path) -> None:
    with pytest.raises(UserError, match="fixed validation split"):
        build_data(load_config("mutag-gin", None, [f"data.dir={mutag_root}", "data.val_fraction=0.2"]))
    with pytest.raises(UserError, match="fold must be a whole number in 0..9, got 12"):
        build_data(load_config("mutag-gin", None, [f"data.dir={mutag_root}", "data.args.fold=12"]))
