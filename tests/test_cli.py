"""The archzoo command: data on stdout, one sentence and a non-zero exit for user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archzoo.cli import main


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archzoo", *args], capture_output=True, text=True, cwd=cwd)


def assert_one_sentence_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("archzoo: error: ")
    for n in needles:
        assert n in lines[0], lines[0]
    assert r.stdout == ""


def test_list_recipes_models_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "recipes"]) == 0
    out = capsys.readouterr().out
    for r in ("digits-mlp", "digits-cnn", "fashion-mlp", "fashion-cnn"):
        assert r in out
    assert main(["list", "models", "resnet*"]) == 0
    models = capsys.readouterr().out.split()
    assert "resnet18" in models and "mlp" not in models
    assert main(["list", "datasets"]) == 0
    assert {"digits", "diabetes", "fashion_mnist"} <= set(capsys.readouterr().out.split())


def test_train_prints_results_json_on_stdout(digits_run: Path) -> None:
    assert (digits_run / "config.yaml").is_file()
    assert (digits_run / "model.safetensors").is_file()
    assert (digits_run / "checkpoints" / "best.safetensors").is_file()
    assert (digits_run / "plots" / "loss.png").is_file()
    header = (digits_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["epoch", "step", "time"]
    assert {"train/loss", "val/acc", "test/acc"} <= set(header)
    assert list((digits_run / "tensorboard").glob("events.out.tfevents.*"))


def test_eval_reproduces_training_test_metrics(digits_run: Path) -> None:
    r = run_cli("eval", str(digits_run), "--split", "test")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = json.loads((digits_run / "results.json").read_text())["metrics"]
    assert got["test/acc"] == pytest.approx(want["test/acc"], abs=1e-6)


def test_config_yaml_reproduces_the_run(digits_run: Path, tmp_path: Path) -> None:
    r = run_cli("train", "--config", str(digits_run / "config.yaml"), "--run-dir", str(tmp_path / "again"))
    assert r.returncode == 0, r.stderr
    a = json.loads((digits_run / "results.json").read_text())["metrics"]
    b = json.loads((tmp_path / "again" / "results.json").read_text())["metrics"]
    assert a == b


def test_predict_an_image_file(digits_run: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = int(np.flatnonzero(d.target == 3)[0])
    png = tmp_path / "three.png"
    Image.fromarray((d.images[idx] * 255 / 16).astype(np.uint8), mode="L").save(png)
    r = run_cli("predict", str(digits_run), str(png), "--top", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    path, label, prob = lines[0].split("\t")
    assert path == str(png)
    assert label == "3"
    assert 0.0 < float(prob) <= 1.0


def test_summary_of_model_and_recipe() -> None:
    r = run_cli("summary", "lenet5", "--input", "1,28,28")
    assert r.returncode == 0, r.stderr
    assert "Conv2d" in r.stdout and "2×10" in r.stdout
    total = sum(p.numel() for p in __import__("archzoo").create_model("lenet5").parameters())
    assert f"parameters {total:,}" in r.stdout
    r = run_cli("summary", "digits-cnn")
    assert r.returncode == 0, r.stderr
    assert "input 2×1×8×8" in r.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "no-such-recipe"], ["Unknown recipe 'no-such-recipe'"]),
        (["train", "digits-mlp", "optim.lrr=1"], ["optim.lrr"]),
        (["train", "digits-mlp", "train.epochs=many"], ["train.epochs", "integer"]),
        (["train", "digits-mlp", "model.args.widht=3"], ["widht"]),
        (["train", "digits-mlp", "model.name=resnet999"], ["Unknown model 'resnet999'"]),
        (["train", "digits-mlp", "train.precision=fp16"], ["CUDA"]),
        (["eval", "/nonexistent/run"], ["not a run directory"]),
        (["summary", "lenet5", "--input", "1,x"], ["--input"]),
        (["list", "gizmos"], ["invalid choice"]),
        (["train", "digits-mlp", "--bogus-flag"], ["--bogus-flag"]),
    ],
)
def test_user_errors_are_one_sentence(args: list[str], needles: list[str]) -> None:
    assert_one_sentence_error(run_cli(*args), *needles)


def test_model_that_does_not_fit_the_data_is_one_sentence() -> None:
    # LeNet-5's 5x5 convolutions cannot shrink an 8x8 digit twice.
    r = run_cli("train", "digits-cnn", "model.name=lenet5", "model.args={image_size: 28}")
    assert_one_sentence_error(r, "input")


def test_truncated_checkpoint_is_one_sentence(digits_run: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(digits_run, broken)
    f = broken / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert_one_sentence_error(run_cli("eval", str(broken)), "model.safetensors")


def test_nan_loss_stops_with_a_sentence_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "nan"
    r = run_cli(
        "train",
        "digits-mlp",
        "optim.lr=1e12",
        "optim.name=sgd",
        "train.epochs=5",
        "log.progress=none",
        "--run-dir",
        str(run),
    )
    assert_one_sentence_error(r, "diverged")
    assert (run / "config.yaml").is_file()


def test_data_where_honours_data_dir(tmp_path: Path) -> None:
    r = run_cli("data", "where", "--data-dir", str(tmp_path))
    assert r.returncode == 0
    assert r.stdout.strip() == str(tmp_path)


def test_missing_dataset_says_how_to_get_it(tmp_path: Path) -> None:
    r = run_cli("train", "fashion-mlp", "--data-dir", str(tmp_path))
    assert_one_sentence_error(r, "dataset-fashion-mnist")


def test_resume_that_would_change_the_schedule_is_refused_and_keeps_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fast = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]
    r = run_cli("train", "digits-mlp", "train.epochs=1", *fast, "--run-dir", str(run))
    assert r.returncode == 0, r.stderr
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    # digits-mlp runs a onecycle schedule built for 1 epoch: a second one is not the same training.
    r = run_cli("train", "--resume", str(run), "train.epochs=2", "optim.lr=0.1", *fast)
    assert_one_sentence_error(r, "train.epochs 1 → 2", "optim.lr", f"model.pretrained={run}")
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before  # nothing rewritten
    # The way the message names works: a new run from the old one's weights, two epochs long.
    r = run_cli(
        "train",
        "--config",
        str(run / "config.yaml"),
        f"model.pretrained={run}",
        "train.epochs=2",
        *fast,
        "--run-dir",
        str(tmp_path / "more"),
    )
    assert r.returncode == 0, r.stderr
    # A change the checkpoint allows goes on and says so.
    r = run_cli("train", "--resume", str(run), "train.early_stopping=3", *fast, "log.progress=lines")
    assert r.returncode == 0, r.stderr
    assert "resuming with train.early_stopping 0 → 3" in r.stderr


@pytest.mark.parametrize(
    ("extra", "named"),
    [(["digits-cnn"], "a recipe"), (["--config", "x.yaml"], "--config"), (["--run-dir", "x"], "--run-dir")],
)
def test_resume_with_what_it_would_ignore_is_refused(tmp_path: Path, extra: list[str], named: str) -> None:
    r = run_cli("train", "--resume", str(tmp_path / "run"), *extra, cwd=tmp_path)
    assert_one_sentence_error(r, f"not {named}")
    assert not (tmp_path / "x").exists()


def test_train_with_a_tokenizer_file_that_does_not_parse_is_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    r = run_cli("train", "sms-bert", f"data.args.tokenizer={bad}", "train.max_steps=1", f"log.dir={tmp_path}")
    assert_one_sentence_error(r, "is not a tokenizer.json")
