"""Progress: a live bar on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

ARGS = ["train", "digits-mlp", "train.epochs=2", "train.threads=1", "log.plots=false", "log.tensorboard=false"]


def test_epoch_lines_when_not_a_terminal(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "archzoo", *ARGS, "--run-dir", str(tmp_path / "r")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("samples/s" in line and "val/acc" in line for line in lines)
    assert "\x1b[" not in r.stderr  # no terminal control codes in a log file


def test_live_bar_on_a_terminal(tmp_path: Path) -> None:
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    p = subprocess.Popen(
        [sys.executable, "-m", "archzoo", *ARGS, "--run-dir", str(tmp_path / "r")],
        stdin=child, stdout=subprocess.DEVNULL, stderr=child, env=env,
    )  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert p.wait() == 0
    os.close(main)
    out = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in out  # the bar redraws itself with control codes
    assert "samples/s" in out and "epoch 1/2" in out
