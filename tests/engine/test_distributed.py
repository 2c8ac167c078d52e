"""Two CPU processes under torchrun (gloo) match one process with the same global batch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

# No batch norm and no dropout: with them the ranks' statistics legitimately differ.
ARGS = [
    "digits-mlp",
    "train.epochs=2",
    "model.args.dropout=0.0",
    "data.batch_size=64",
    "train.threads=1",
    "log.progress=none",
    "log.plots=false",
    "log.tensorboard=false",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_two_processes_match_one(tmp_path: Path) -> None:
    one = subprocess.run(
        [sys.executable, "-m", "archzoo", "train", *ARGS, "--run-dir", str(tmp_path / "one")],
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "-m",
            "archzoo",
            "train",
            *ARGS,
            "--run-dir",
            str(tmp_path / "two"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    res = json.loads((tmp_path / "two" / "results.json").read_text())
    assert res["world_size"] == 2
    ref = json.loads((tmp_path / "one" / "results.json").read_text())
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=1e-4)
    assert abs(res["metrics"]["test/acc"] - ref["metrics"]["test/acc"]) < 0.01
    # Rank 0 alone wrote logs and checkpoints: one metrics file, one events file.
    assert len(list((tmp_path / "two").glob("metrics*.csv"))) == 1
    assert (tmp_path / "two" / "checkpoints" / "LAST").is_file()
