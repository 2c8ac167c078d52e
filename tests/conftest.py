"""Shared fixtures: the benchmark data root and quick trained runs."""

from __future__ import annotations

import contextlib
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
def mutag_root(data_root: Path) -> Path:
    """The data root, holding TUDataset MUTAG's raw files (a skip when they are absent)."""
    if not (data_root / "tudataset" / "MUTAG" / "raw" / "MUTAG_A.txt").is_file():
        pytest.skip("the data root has no tudataset/MUTAG (see ../shared/data/MANIFEST.md)")
    return data_root


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short digits-cnn run, trained once for the CLI tests."""
    from archzoo.cli import main

    run = tmp_path_factory.mktemp("runs") / "digits-cnn"
    rc = main(["train", "digits-cnn", "train.epochs=3", "log.progress=none", "train.threads=1", "--run-dir", str(run)])
    assert rc == 0
    return run


class PlainStepContext:
    """The part of the engine's step context a task uses, without the engine: SGD, fp32, no accumulation."""

    global_step = 0
    epoch = 0
    device = torch.device("cpu")

    def __init__(self, model: torch.nn.Module, lr: float = 0.1) -> None:
        self.opt = torch.optim.SGD(model.parameters(), lr=lr)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, name: str = "main") -> None:
        loss.backward()

    def step(self, name: str = "main") -> bool:
        self.opt.step()
        self.opt.zero_grad()
        self.global_step += 1
        return True


@pytest.fixture
def step_context() -> type[PlainStepContext]:
    """A factory of step contexts for driving ``task.training_step`` in unit tests: ``step_context(model)``."""
    return PlainStepContext
