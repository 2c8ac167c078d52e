"""The inspect, find-batch and plot commands: outputs on stdout, one sentence and exit 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from archzoo.cli import main


def assert_refused(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> None:
    assert main(argv) == 2
    cap = capsys.readouterr()
    lines = [line for line in cap.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("archzoo: error: "), cap.err
    assert "Traceback" not in cap.err
    for n in needles:
        assert n in lines[0], lines[0]
    assert cap.out == ""


def test_inspect_a_finished_run(digits_run: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "archzoo", "inspect", str(digits_run), "--batches", "2", "--weights", "best"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "gradients over 2 training batch(es)" in r.stdout and "warnings:" in r.stdout
    report = json.loads((digits_run / "inspect" / "inspect.json").read_text())
    assert report["run_dir"] == str(digits_run) and report["weights"] == "best"
    assert report["gradients"]["batches"] == 2
    assert any(a["module"] == "ReLU" for a in report["activations"].values())
    assert Image.open(digits_run / "inspect" / "data.png").size[0] > 500


def test_inspect_a_recipe_writes_json_where_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    argv = ["inspect", "digits-mlp", "train.threads=1", "--json", str(out), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "head.weight" in cap.out and str(out) in cap.err
    assert json.loads(out.read_text())["target"] == "digits-mlp"
    assert (tmp_path / "o" / "data.png").is_file()


def test_gradcheck_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["inspect", "--gradcheck", "gru_cell", "hidden_size=3", "--json", str(tmp_path / "g.json")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["passed"] and r["args"] == {"hidden_size": 3}
    assert json.loads((tmp_path / "g.json").read_text())["name"] == "gru_cell"
    assert main(["inspect", "--gradcheck", "list"]) == 0
    assert {"lstm_cell", "gcn_layer", "resnet18"} <= set(capsys.readouterr().out.split())


def test_plot_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "activations", "--out", str(tmp_path / "a.png")]) == 0
    assert main(["plot", "losses", "--out", str(tmp_path / "l.png")]) == 0
    argv = ["plot", "optimizers", "digits-mlp", "train.threads=1", "--steps", "3", "--optimizers", "sgd,adam"]
    assert main([*argv, "--out", str(tmp_path / "o.png"), "--json", str(tmp_path / "o.json")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / n) for n in ("a.png", "l.png", "o.png")]
    losses = json.loads((tmp_path / "o.json").read_text())["losses"]
    assert list(losses) == ["sgd", "adam"] and all(len(v) == 3 for v in losses.values())


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["inspect"], "Name a run directory or a recipe"),
        (["inspect", "optim.lr=1"], "is an override"),
        (["inspect", "--batches", "0", "digits-mlp", "train.threads=1"], "--batches must be at least 1"),
        (["inspect", "digits-mlp", "--weights", "best"], "--weights applies to a run directory"),
        (["inspect", "no-such-recipe"], "Unknown recipe 'no-such-recipe'"),
        (["inspect", "--gradcheck", "nope_layer"], "Unknown model 'nope_layer'"),
        (["inspect", "--gradcheck", "lstm_cell", "hidden"], "must look like key=value"),
        (["inspect", "--gradcheck", "lstm_cell", "--batches", "2"], "--gradcheck takes key=value"),
        (["find-batch", "digits-mlp", "train.device=cpu"], "needs --budget-mb"),
        (["find-batch", "digits-mlp", "--budget-mb", "0"], "--budget-mb must be positive"),
        (["plot", "optimizers", "digits-mlp", "--optimizers", "lion"], "Unknown optimizer 'lion'"),
        (["plot", "optimizers", "digits-mlp", "train.epochs=2"], "sets train.epochs itself"),
        (["plot", "optimizers", "digits-mlp", "--steps", "0"], "--steps must be at least 1"),
        (["plot"], "Use 'archzoo plot activations'"),
        (["train", "digits-mlp", "task.args.loss=mse"], "task.args.loss must be one of ce, nll, hinge"),
        (["train", "digits-mlp", "optim.name=momentum", "optim.momentum=0"], "needs optim.momentum > 0"),
    ],
)
def test_bad_input_is_one_sentence(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert_refused(capsys, argv, needle)


def test_inspect_run_refuses_overrides(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(capsys, ["inspect", str(digits_run), "optim.lr=1"], "Overrides apply to a recipe")
