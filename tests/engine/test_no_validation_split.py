"""data.val_fraction=0: no validation runs, the last weights are kept, and what needs validation is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.loggers import read_metrics
from archzoo.engine.trainer import Trainer
from archzoo.errors import UserError

FAST = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1", "data.val_fraction=0"]


def test_without_a_validation_split_the_last_weights_are_kept(tmp_path: Path) -> None:
    cfg = load_config("digits-mlp", None, [*FAST, "train.epochs=3", "train.eval_every=5"])
    tr = Trainer(cfg, run_dir=tmp_path / "run")
    assert len(tr.data.val) == 0 and len(tr.data.train) > 1000  # every training digit is trained on
    res = tr.fit()
    rows = read_metrics(tr.run_dir / "metrics.csv")
    assert not any(k.startswith("val/") for r in rows for k in r)
    assert not (tr.run_dir / "checkpoints" / "best.safetensors").exists()
    final = ckpt.load_weights_file(tr.run_dir / "model.safetensors")
    live = tr.model.state_dict()
    assert all(torch.equal(final[k], live[k].cpu()) for k in final)  # the third epoch's weights, not the first's
    assert 0.5 < res["test/acc"] <= 1.0


@pytest.mark.parametrize("option", ["train.early_stopping=3", "optim.scheduler=plateau"])
def test_what_needs_validation_is_refused_without_a_split(option: str, tmp_path: Path) -> None:
    cfg = load_config("digits-mlp", None, [*FAST, option])
    with pytest.raises(UserError, match="needs a validation split"):
        Trainer(cfg, run_dir=tmp_path / "run")
