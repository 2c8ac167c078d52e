"""log.mlflow=true against MLflow's real local SQLite store; log.wandb=true in W&B's offline mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archzoo.cli import main
from archzoo.engine.loggers import read_metrics

QUICK = ["train.threads=1", "log.progress=none", "log.plots=false", "log.tensorboard=false", "log.report=false"]


def _client(run: Path):  # noqa: ANN202 - an MlflowClient
    from mlflow.tracking import MlflowClient

    ids = json.loads((run / "mlflow.json").read_text())
    assert ids["tracking_uri"] == f"sqlite:///{(run / 'mlflow.db').resolve()}"
    return MlflowClient(tracking_uri=ids["tracking_uri"]), ids["run_id"]


def _csv_series(run: Path, key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[key])) for r in read_metrics(run / "metrics.csv") if key in r]


def test_mlflow_store_holds_params_metrics_and_artifacts(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    run = tmp_path / "ml"
    argv = ["train", "digits-mlp", "train.epochs=2", "train.log_every=5", *QUICK, "log.report=true", "log.mlflow=true"]
    assert main([*argv, "--run-dir", str(run)]) == 0
    client, rid = _client(run)
    r = client.get_run(rid)
    assert r.info.status == "FINISHED"
    assert client.get_experiment(r.info.experiment_id).name == "digits-mlp"
    assert r.data.params["optim.name"] and r.data.params["train.epochs"] == "2"
    for key in ("train/loss", "val/acc"):
        got = [(m.step, m.value) for m in client.get_metric_history(rid, key)]
        want = _csv_series(run, key)
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5)  # metrics.csv keeps 6 digits
    results = json.loads((run / "results.json").read_text())
    assert r.data.metrics["test/acc"] == pytest.approx(results["metrics"]["test/acc"])
    assert {a.path for a in client.list_artifacts(rid)} == {"results.json", "report.html"}


def test_resumed_run_continues_the_same_mlflow_run_without_doubled_steps(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    run = tmp_path / "kill"
    args = ["digits-mlp", "train.epochs=3", "train.log_every=2", "train.checkpoint_every=7", *QUICK, "log.mlflow=true"]
    p = subprocess.Popen(
        [sys.executable, "-m", "archzoo", "train", *args, "--run-dir", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    pointer = run / "checkpoints" / "LAST"
    while time.time() < deadline and not (pointer.is_file() and pointer.read_text().startswith("epoch0001")):
        assert p.poll() is None, p.stderr.read().decode() if p.stderr else ""
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert main(["train", "--resume", str(run)]) == 0
    client, rid = _client(run)
    assert client.get_run(rid).info.status == "FINISHED"
    # The killed process had logged steps past its checkpoint; the resumed one logs them again
    # exactly, and the store keeps each once: the same rows as metrics.csv (whose epoch-end row
    # repeats the step of the last logging row of the epoch, with the epoch's mean).
    got = [(m.step, m.value) for m in client.get_metric_history(rid, "train/loss")]
    want = _csv_series(run, "train/loss")
    assert [s for s, _ in got] == [s for s, _ in want]
    assert sorted(v for _, v in got) == pytest.approx(sorted(v for _, v in want), rel=1e-5)


def test_wandb_offline_run_holds_the_metrics(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    run = tmp_path / "wb"
    assert main(["train", "digits-mlp", "train.epochs=1", *QUICK, "log.wandb=true", "--run-dir", str(run)]) == 0
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    (records,) = offline[0].glob("run-*.wandb")
    data = records.read_bytes()
    # The record file is W&B's own binary log; the metric names and the config travel in it as text.
    for key in (b"train/loss", b"val/acc", b"test/acc", b"digits-mlp"):
        assert key in data, key
