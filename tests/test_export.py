"""archzoo export: ONNX checked by onnxruntime, torch.export and safetensors round trips, refusals.

Four tiny runs (a few optimizer steps each) stand for the families that must export: a CNN
(digits-cnn), an LSTM classifier (names-gru with model.args.cell=lstm), a GPT's forward pass
(shakespeare-gpt, one narrow layer) and a GCN (karate-gcn). Each test recomputes the exported
file's outputs itself, on inputs it draws from the run's data at a size the export did not use,
against the model's own PyTorch forward.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from archzoo.cli import main
from archzoo.data.splits import PaddedBatch
from archzoo.engine.run import load_run
from archzoo.errors import UserError
from archzoo.export import FORMAT_REFUSALS, MODEL_REFUSALS, export_refusal, export_run
from archzoo.registry import create_task, list_models, list_tasks

COMMON = ["train.threads=1", "log.progress=none", "log.tensorboard=false", "log.plots=false"]
RECIPES = {
    "digits-cnn": ["train.epochs=1", "train.max_steps=3"],
    "names-gru": ["train.epochs=1", "train.max_steps=3", "model.args.cell=lstm"],
    "shakespeare-gpt": [
        "train.max_steps=3",
        "model.args.n_layer=1",
        "model.args.n_embd=32",
        "data.eval_batch_size=512",
    ],
    "karate-gcn": ["train.epochs=3"],
}


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four runs, trained once; names-gru and shakespeare-gpt read the benchmark data."""
    import os

    root = os.environ.get("ARCHZOO_DATA")
    if (
        not root
        or not (Path(root) / "text" / "names").is_dir()
        or not (Path(root) / "text" / "tinyshakespeare.txt").is_file()
    ):
        pytest.skip(
            "ARCHZOO_DATA does not hold text/names and text/tinyshakespeare.txt (see ../shared/data/MANIFEST.md)"
        )
    base = tmp_path_factory.mktemp("export-runs")
    out = {}
    for recipe, overrides in RECIPES.items():
        out[recipe] = base / recipe
        assert main(["train", recipe, *overrides, *COMMON, "--run-dir", str(out[recipe])]) == 0
    return out


def _inputs(recipe: str, run: Any, n: int) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """``n`` examples of the run's test data as the ONNX file's inputs, and the model's own output on them."""
    model, split = run.model, run.data.split("test")
    with torch.no_grad():
        if recipe == "karate-gcn":  # the subgraph of the first n nodes
            from torch_geometric.data import Data

            g = next(iter(split.batches(1)))
            keep = (g.edge_index < n).all(0)
            x, ei = g.x[:n], g.edge_index[:, keep]
            return {"x": x.numpy(), "edge_index": ei.numpy()}, model(Data(x=x, edge_index=ei))
        if recipe == "names-gru":
            b = next(b for b in split.batches(n) if b.x.shape[0] == n)
            return {"x": b.x.numpy(), "lengths": b.lengths.numpy()}, model(PaddedBatch(b.x, b.lengths))
        x = next(iter(split.batches(n)))[0]
        if recipe == "shakespeare-gpt":
            x = x[:, :37]  # another sequence length than the 64 exported
            return {"x": x.numpy()}, model(x)[0]
        return {"x": x.numpy()}, model(x)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_onnx_equals_pytorch_at_another_batch(recipe: str, runs: dict[str, Path], tmp_path: Path) -> None:
    run = load_run(runs[recipe])
    out = tmp_path / "m.onnx"
    summary = export_run(run, "onnx", out=out)
    assert Path(summary["path"]) == out and out.is_file()
    assert summary["checked_batch"] != summary["exported_batch"]
    assert 0.0 <= summary["max_abs_diff"] <= 1e-4
    assert not list(tmp_path.glob(".*tmp*")), "the export left its temporary file behind"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    n = 3 if recipe != "karate-gcn" else 23  # neither the exported nor the checked size
    assert n not in (summary["exported_batch"], summary["checked_batch"])
    feed, want = _inputs(recipe, run, n)
    assert names == list(feed)
    got = torch.from_numpy(session.run(None, feed)[0])
    assert got.shape == want.shape
    torch.testing.assert_close(got, want.float(), atol=1e-4, rtol=0)
    assert isinstance(session.get_inputs()[0].shape[0], str)  # the first dimension stays symbolic


@pytest.mark.parametrize("recipe", ["digits-cnn", "shakespeare-gpt", "karate-gcn"])
def test_torch_export_round_trip(recipe: str, runs: dict[str, Path], tmp_path: Path) -> None:
    run = load_run(runs[recipe])
    summary = export_run(run, "torch-export", out=tmp_path / "m.pt2")
    assert summary["max_abs_diff"] <= 1e-4 and summary["checked_batch"] != summary["exported_batch"]
    program = torch.export.load(str(tmp_path / "m.pt2"))
    feed, want = _inputs(recipe, run, 3 if recipe != "karate-gcn" else 23)
    with torch.no_grad():
        got = program.module()(*(torch.from_numpy(v) for v in feed.values()))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_torch_export_of_an_lstm_is_refused_in_one_sentence(runs: dict[str, Path], tmp_path: Path) -> None:
    run = load_run(runs["names-gru"])
    with pytest.raises(UserError, match=r"^Model 'rnn_classifier' cannot be exported as torch-export: .*onnx") as e:
        export_run(run, "torch-export", out=tmp_path / "m.pt2")
    assert "\n" not in str(e.value) and not (tmp_path / "m.pt2").exists()


@pytest.mark.parametrize("recipe", ["digits-cnn", "names-gru"])
def test_safetensors_folder_reloads_into_the_model(recipe: str, runs: dict[str, Path], tmp_path: Path) -> None:
    run = load_run(runs[recipe])
    out = tmp_path / "weights"
    summary = export_run(run, "safetensors", out=out)
    assert summary["max_abs_diff"] == 0.0
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.yaml", "info.json", "export.json"} <= files
    if recipe == "names-gru":
        assert "tokenizer.json" in files  # the folder is self-describing: its vocabulary travels with it
    meta = json.loads((out / "export.json").read_text())
    assert meta["model"] == run.cfg.model.name and meta["recipe"] == recipe
    assert meta["parameters"] == sum(p.numel() for p in run.model.parameters())
    again = load_run(out)
    for (k, a), (k2, b) in zip(run.model.state_dict().items(), again.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


def test_default_paths_and_cli_summary(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rd = runs["karate-gcn"]
    assert main(["export", str(rd), "--format", "onnx", "--batch", "30"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(rd / "export" / "model.onnx") and (rd / "export" / "model.onnx").is_file()
    assert summary["exported_batch"] == 30 and summary["checked_batch"] == 15
    assert [i["name"] for i in summary["inputs"]] == ["x", "edge_index"]
    assert summary["inputs"][1]["dynamic"] == {"1": "edges"}
    assert summary["max_abs_diff"] <= 1e-4


def _one_sentence(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("archzoo: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_a_generative_run_is_refused_in_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = tmp_path / "vae"
    assert (
        main(
            [
                "train",
                "digits-vae",
                "train.epochs=1",
                "train.max_steps=1",
                "task.args.sample_every=0",
                *COMMON,
                "--run-dir",
                str(rd),
            ]
        )
        == 0
    )
    capsys.readouterr()
    rc = main(["export", str(rd), "--format", "onnx"])
    _one_sentence(capsys, rc, "'vae_mlp'", "cannot be exported", "sampling")
    assert not (rd / "export" / "model.onnx").exists()
    # The weights of any run still export as safetensors.
    assert main(["export", str(rd), "--format", "safetensors"]) == 0
    assert (rd / "export" / "safetensors" / "model.safetensors").is_file()


def test_bad_inputs_end_in_one_sentence(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_sentence(capsys, main(["export", str(tmp_path / "nowhere"), "--format", "onnx"]), "not a run directory")
    broken = tmp_path / "broken"
    shutil.copytree(runs["digits-cnn"], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _one_sentence(capsys, main(["export", str(broken), "--format", "onnx"]), "truncated or corrupt")
    with pytest.raises(SystemExit) as e:  # argparse refuses the format among its choices
        main(["export", str(runs["digits-cnn"]), "--format", "tflite"])
    _one_sentence(capsys, int(e.value.code), "invalid choice", "tflite")
    _one_sentence(capsys, main(["export", str(runs["digits-cnn"]), "--format", "onnx", "--batch", "1"]), "at least 2")
    _one_sentence(
        capsys,
        main(["export", str(runs["digits-cnn"]), "--format", "onnx", "--batch", "5000"]),
        "pass a smaller --batch",
    )


def test_a_failed_check_keeps_no_file(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the tolerance at zero, float rounding between onnxruntime and PyTorch fails the check."""
    import archzoo.export as ex

    monkeypatch.setattr(ex, "ATOL", 0.0)
    run = load_run(runs["digits-cnn"])
    out = tmp_path / "m.onnx"
    try:
        summary = export_run(run, "onnx", out=out)
    except UserError as e:
        assert "differs from PyTorch by" in str(e) and "not kept" in str(e)
        assert not out.exists() and not list(tmp_path.iterdir())
    else:  # bit-identical outputs: nothing failed, and the file was kept
        assert summary["max_abs_diff"] == 0.0 and out.is_file()


def test_refusal_lists_name_registered_models_and_every_task_decides() -> None:
    models = set(list_models())
    assert set(MODEL_REFUSALS) <= models
    assert {m for _, m in FORMAT_REFUSALS} <= models
    for why in [*MODEL_REFUSALS.values(), *FORMAT_REFUSALS.values()]:
        assert why and not why.endswith(".") and "\n" not in why
    exportable = set()
    for name in list_tasks():
        refusal = create_task(name).export_refusal
        assert refusal is None or (isinstance(refusal, str) and not refusal.endswith("."))
        if refusal is None:
            exportable.add(name)
    assert {"classification", "node_classification", "language_model", "regression", "autoencoder"} <= exportable
    assert not exportable & {"gan", "wgan_gp", "ddpm", "vae", "flow", "seq2seq", "graph_generation"}


def test_export_refusal_names_model_and_reason(runs: dict[str, Path]) -> None:
    run = load_run(runs["names-gru"])
    assert export_refusal(run, "onnx") is None
    assert "sequence length" in (export_refusal(run, "torch-export") or "")
