"""The text recipes: data, model and task fit and step; a trained run keeps its tokenizer for predict and sample."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import archzoo
from archzoo.config import load_config
from archzoo.data.tokenizers import CharTokenizer, Tokenizer
from archzoo.engine.builders import build_data, build_model, build_task
from archzoo.registry import create_dataset

# Each recipe, with overrides that keep two steps quick (the data stay whole).
SMALL = {
    "shakespeare-lstm": ["data.batch_size=4", "data.args.block_size=32"],
    "ptb-lstm": ["data.batch_size=4", "data.args.block_size=16"],
    "names-gru": [],
    "sms-gru": [],
}
QUICK = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:  # one cache for the module: each corpus is encoded once
        mp.setenv("ARCHZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.mark.parametrize("recipe", list(SMALL))
def test_text_recipe_parts_fit_and_take_two_steps(recipe: str, data_root: Path, step_context: type) -> None:
    torch.manual_seed(0)
    cfg = load_config(recipe, None, [f"data.dir={data_root}", *SMALL[recipe]])
    bundle = build_data(cfg)  # as the engine builds them
    info = bundle.info
    assert isinstance(info["tokenizer"], Tokenizer) and info["itos"] == info["tokenizer"].itos
    model = build_model(cfg, info)
    task = build_task(cfg)
    task.setup(model, info, torch.device("cpu"))
    task.start_epoch(0)
    for i, batch in enumerate(bundle.train.batches(cfg.data.train_batch, shuffle=True)):
        logs = task.training_step(model, batch, step_context(model))
        assert torch.isfinite(logs["loss"]) and int(task.count(batch)) > 0
        if i == 1:
            break


def test_names_run_keeps_its_tokenizer_and_predicts_text(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archzoo.cli import main

    run = tmp_path / "names-gru"
    args = ["train", "names-gru", "train.epochs=1", "train.max_steps=3", f"data.dir={data_root}", *QUICK]
    assert main([*args, "data.eval_batch_size=4096", "--run-dir", str(run)]) == 0
    assert (run / "tokenizer.json").is_file()
    original = create_dataset("names", data_dir=str(data_root)).info["tokenizer"]
    loaded = archzoo.load_run(run).info["tokenizer"]
    assert isinstance(loaded, CharTokenizer) and loaded == original
    for name in ["Satoshi", "Müller", "O'Neill", "Nguyen"]:
        assert loaded.encode(name) == original.encode(name)
    capsys.readouterr()
    assert main(["predict", str(run), "Satoshi", "Müller"]) == 0
    lines = capsys.readouterr().out.splitlines()
    classes = set(json.loads((run / "info.json").read_text())["classes"])
    assert [line.split("\t")[0] for line in lines] == ["Satoshi", "Müller"]
    assert all(line.split("\t")[1] in classes for line in lines)


def test_a_text_file_run_samples_with_its_saved_tokenizer(tmp_path: Path) -> None:
    from archzoo.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: but soft, what light through yonder window breaks?\n" * 60, encoding="utf-8")
    run = tmp_path / "run"
    args = ["train", "shakespeare-lstm", "data.name=text_file", f"data.args.path={corpus}", "data.args.block_size=16"]
    args += ["data.batch_size=4", "data.eval_batch_size=4", "train.epochs=1", "train.max_steps=2", *QUICK]
    assert main([*args, "--run-dir", str(run)]) == 0
    info = json.loads((run / "info.json").read_text())
    assert info["tokenizer"]["file"] == "tokenizer.json" and info["vocab_size"] == len(info["itos"])
    loaded = archzoo.load_run(run).info["tokenizer"]
    assert loaded.decode(loaded.encode("ROMEO: soft")) == "ROMEO: soft"
    assert main(["sample", str(run), "--prompt", "ROMEO:", "--tokens", "20"]) == 0
    text = (run / "samples" / "sample.txt").read_text()
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 20
