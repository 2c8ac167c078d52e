"""Four small consumers of the one ``Trainer.fit``, one per new kind of data.

A character LSTM language model on a token stream with carried state (python-lstm), a padded
sequence classifier (parity-gru), a graph classifier on PyG mini-batches (shapes-gcn) and a node
classifier on one full graph (karate-gcn). Each is killed with SIGKILL between two steps and
resumed to bitwise-equal weights, and each runs under ``torchrun --nproc_per_node=2`` with a
result equal to one process's (exactly for the full graph, where every rank computes the same).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# Each consumer, sized so a run takes a few seconds: long enough to be killed between two steps.
CONSUMERS = {
    "python-lstm": ["data.args.max_chars=60000", "train.epochs=2", "data.batch_size=16", "data.eval_batch_size=16"],
    "parity-gru": ["train.epochs=6", "data.batch_size=32"],
    "shapes-gcn": ["train.epochs=6", "data.batch_size=16"],
    "karate-gcn": ["train.epochs=60"],
}
COMMON = ["train.threads=1", "log.progress=none", "log.plots=false", "log.tensorboard=false"]


def _cmd(recipe: str, run: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "archzoo",
        "train",
        recipe,
        *CONSUMERS[recipe],
        *COMMON,
        *extra,
        "--run-dir",
        str(run),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pointer(run: Path) -> str:
    try:
        return (run / "checkpoints" / "LAST").read_text().strip()
    except OSError:
        return ""


def _step(tag: str) -> int:
    return int(tag.rsplit("step", 1)[1]) if "step" in tag else 0


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each consumer trained once in one process, uninterrupted: the reference of both tests (made on first use)."""
    runs: dict[str, Path] = {}

    class Lazy(dict):
        def __missing__(self, recipe: str) -> Path:
            run = tmp_path_factory.mktemp(recipe) / "one"
            r = subprocess.run(_cmd(recipe, run), capture_output=True, text=True)
            assert r.returncode == 0, r.stderr[-2000:]
            self[recipe] = run
            return run

    return Lazy(runs)


# In the default suite tests/engine/test_kill_faults.py kills python-lstm and karate-gcn at random
# moments (some inside checkpoint writes) and checks the same bitwise resume, in-process and far
# faster; here those two run with -m slow, and the two kinds that test does not cover stay.
KILL_COVERED_ELSEWHERE = {"python-lstm", "karate-gcn"}


@pytest.mark.parametrize(
    "recipe",
    [pytest.param(r, marks=pytest.mark.slow) if r in KILL_COVERED_ELSEWHERE else r for r in CONSUMERS],
)
def test_kill9_between_steps_resumes_bitwise(recipe: str, tmp_path: Path, one_process: dict[str, Path]) -> None:
    ref = one_process[recipe]
    total = json.loads((ref / "results.json").read_text())["steps_run"]
    victim = subprocess.Popen(
        _cmd(recipe, tmp_path / "victim", "train.checkpoint_every=1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        s = _step(_pointer(tmp_path / "victim"))
        if total // 3 <= s < total - 2:
            break
        assert victim.poll() is None, "the run finished before it could be killed; make it longer"
        time.sleep(0.005)
    else:
        raise AssertionError("no checkpoint between the steps appeared in time")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = _pointer(tmp_path / "victim")
    assert not (tmp_path / "victim" / "model.safetensors").exists()
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "archzoo",
            "train",
            "--resume",
            str(tmp_path / "victim"),
            "train.checkpoint_every=epoch",
        ],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_file(str(ref / "model.safetensors"))
    b = load_file(str(tmp_path / "victim" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{recipe}: {k} differs after resuming from {killed_at}"


# What one process and two agree on: the full graph exactly (both ranks compute the same gradient);
# the others see the same global batches, but sum gradients in another order, so their figures
# drift apart by float rounding over the run: within 0.02 (one example of 100 in accuracy).
TOLERANCE = {"python-lstm": 0.02, "parity-gru": 0.02, "shapes-gcn": 0.02, "karate-gcn": 0.0}


@pytest.mark.parametrize("recipe", list(CONSUMERS))
def test_two_processes_match_one(recipe: str, tmp_path: Path, one_process: dict[str, Path]) -> None:
    one = one_process[recipe]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "archzoo",
         *_cmd(recipe, tmp_path / "two")[3:]],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    r1 = json.loads((one / "results.json").read_text())
    r2 = json.loads((tmp_path / "two" / "results.json").read_text())
    assert r2["world_size"] == 2 and r1["steps_run"] == r2["steps_run"]
    if recipe == "python-lstm":
        # Each rank carries its own streams' hidden state; the checkpoint keeps both for resume.
        last = (tmp_path / "two" / "checkpoints" / "LAST").read_text().strip()
        state = torch.load(tmp_path / "two" / "checkpoints" / last / "state.pt", weights_only=True)
        h0, h1 = (r["train_state"] for r in state["task_ranks"])
        assert len(state["task_ranks"]) == 2 and not torch.equal(h0[0], h1[0])
    tol = TOLERANCE[recipe]
    for k, v in r1["metrics"].items():
        if tol == 0.0:
            assert r2["metrics"][k] == v, k
        else:
            assert r2["metrics"][k] == pytest.approx(v, abs=tol), k
