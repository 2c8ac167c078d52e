"""Shared fixtures: the benchmark data root and quick trained runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The tests use tiny tensors, for which one intra-op thread is faster than two and
# does not fight other processes for the cores (subprocess runs pass train.threads=1).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark data (../shared/data in CI), or a skip when it is absent."""
    root = os.environ.get("ARCHZOO_DATA")
    if not root or not (Path(root) / "fashion-mnist").is_dir():
        pytest.skip("ARCHZOO_DATA does not point at the benchmark data (see ../shared/data/MANIFEST.md)")
    return Path(root)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short digits-cnn run, trained once for the CLI tests."""
    from archzoo.cli import main

    run = tmp_path_factory.mktemp("runs") / "digits-cnn"
    rc = main(["train", "digits-cnn", "train.epochs=3", "log.progress=none", "train.threads=1", "--run-dir", str(run)])
    assert rc == 0
    return run
