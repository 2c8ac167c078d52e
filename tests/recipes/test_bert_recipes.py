"""The BERT recipes: MLM pretraining and a fine-tuning that starts from its run; every recipe's parts fit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine.builders import build_data, build_model
from archzoo.engine.trainer import Trainer

QUICK = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]


@pytest.fixture(scope="module")
def root() -> Path:
    r = Path(os.environ.get("ARCHZOO_DATA", ""))
    if not (r / "text" / "ptb" / "ptb.train.txt").is_file():
        pytest.skip("ARCHZOO_DATA has no text/ptb (see ../shared/data/MANIFEST.md)")
    return r


@pytest.mark.slow
def test_sms_bert_starts_from_the_ptb_bert_run(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    small = ["model.args.dim=32", "model.args.depth=1", "model.args.heads=2", "model.args.ff_dim=64"]
    pre = Trainer(load_config("ptb-bert", None, [*QUICK, *small, f"log.dir={tmp_path}", "train.max_steps=20"]))
    pre.fit()
    res = json.loads((pre.run_dir / "results.json").read_text())
    assert res["metrics"]["val/loss"] < 8.3  # below ln(4000): the masked tokens are better than a uniform guess
    tune = [*QUICK, *small, f"log.dir={tmp_path}", f"model.pretrained={pre.run_dir}"]
    cfg = load_config("sms-bert", None, tune)
    bundle = build_data(cfg)
    model = build_model(cfg, bundle.info)
    from safetensors.torch import load_file

    mlm = load_file(str(pre.run_dir / "model.safetensors"))
    torch.testing.assert_close(model.encoder.embed.word.weight, mlm["encoder.embed.word.weight"])
    ft = Trainer(load_config("sms-bert", None, [*tune, "train.max_steps=10"]))
    ft.fit()
    assert (
        json.loads((ft.run_dir / "results.json").read_text())["metrics"]["test/acc"] > 0.8
    )  # 87% ham: it learnt the prior
