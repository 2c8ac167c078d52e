"""NaN and inf in training: the first bad step named, the last good checkpoint kept, no per-step sync;
``train.skip_nonfinite`` skips bad steps, leaving weights, buffers and optimizer state as they were.

A NaN is injected by a model that puts NaN into its input at chosen training forward passes
(counted in training mode only, so validation does not move the count); the engine, the digits data,
the task and the optimizer are the real ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from archzoo.cli import main
from archzoo.config import load_config
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.loggers import read_metrics
from archzoo.engine.trainer import Trainer
from archzoo.errors import TrainingDiverged, UserError
from archzoo.models.mlp import MLP
from archzoo.registry import MODELS

QUIET = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]
NAME = "test_nan_at_forward"


class NanAt(nn.Module):
    """An MLP with batch norm whose k-th training forward passes (1-based, listed in ``at``) see a NaN input."""

    def __init__(self, in_features: int, num_classes: int, at: Sequence[int]) -> None:
        super().__init__()
        self.net = MLP(in_features, num_classes, (32,), "relu", True, 0.0)
        self.at = {int(k) for k in at}
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.calls += 1
            if self.calls in self.at:
                x = x.clone()
                x.view(x.shape[0], -1)[:, 0] = float("nan")
        return self.net(x.flatten(1))


@pytest.fixture
def nan_model() -> Iterator[str]:
    def build(in_channels: int = 1, image_size: int = 8, num_classes: int = 10, at: Sequence[int] = ()) -> NanAt:
        return NanAt(in_channels * image_size**2, num_classes, at)

    MODELS.register(NAME)(build)
    try:
        yield NAME
    finally:
        MODELS._items.pop(NAME, None)


def _cfg(at: Sequence[int], *more: str) -> Any:
    args = [f"model.name={NAME}", f"model.args={{at: {list(at)}}}", "train.epochs=2", *QUIET, *more]
    return load_config("digits-mlp", overrides=args)


def test_nan_names_the_first_bad_step_keeps_the_last_checkpoint_and_reads_only_at_check_points(
    tmp_path: Path, nan_model: str
) -> None:
    # digits at batch 64: 21 steps an epoch. Checkpoints every 5 steps, rows every 4: the NaN of step 23
    # (epoch 2) is seen at the row of step 24, before the checkpoint of step 25 could be written.
    cfg = _cfg([23], "train.checkpoint_every=5", "train.log_every=4")
    trainer = Trainer(cfg, run_dir=tmp_path)
    reads: list[int] = []
    real = trainer._first_bad_step
    trainer._first_bad_step = lambda: (reads.append(trainer.ctx.global_step), real())[1]  # type: ignore[method-assign]
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit()
    msg = str(err.value)
    assert "first at step 23 (epoch 2)" in msg and "train/loss" in msg
    last = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    assert last is not None and str(last) in msg and msg.count(". ") == 0 and msg.endswith(".")
    # The last good checkpoint is from before the bad step, readable, and finite.
    weights, state = ckpt.load_checkpoint(last)
    assert state["global_step"] == 21
    assert all(torch.isfinite(w).all() for w in weights.values())
    # No checkpoint after the bad step; the flag was read only at rows (4, 8, ...), checkpoints (5, 10, ...)
    # and the epoch end (21): never at a step between them.
    steps = sorted(int(p.name.split("step")[1]) for p in (tmp_path / "checkpoints").glob("epoch*"))
    assert max(steps) == 21
    assert reads and set(reads) <= {s for s in range(1, 25) if s % 4 == 0 or s % 5 == 0 or s == 21}
    assert reads[-1] == 24 and len(reads) < 24 // 2


def test_first_bad_step_counts_optimizer_steps_under_accumulation(tmp_path: Path, nan_model: str) -> None:
    # Two micro-batches a step: the 7th forward pass is in optimizer step 4.
    cfg = _cfg([7], "train.grad_accum=2", "train.log_every=100", "train.max_steps=6")
    with pytest.raises(TrainingDiverged, match=r"first at step 4 \(epoch 1\)"):
        Trainer(cfg, run_dir=tmp_path).fit()


def test_cli_exits_non_zero_with_one_sentence(
    tmp_path: Path, nan_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [f"model.name={NAME}", "model.args={at: [3]}", "train.epochs=1", "train.log_every=2", *QUIET]
    code = main(["train", "digits-mlp", *args, "--run-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2  # the command line's exit status for a user-facing error
    assert len(err.splitlines()) == 1 and err.startswith("archzoo: error: ") and "Traceback" not in err
    assert "first at step 3 (epoch 1)" in err and "no checkpoint had been written yet" in err
    assert not (tmp_path / "model.safetensors").exists() and not (tmp_path / "results.json").exists()


def _snapshot(trainer: Trainer) -> dict[str, Any]:
    slot = trainer.ctx.slots["main"]
    return {
        "model": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "optimizer": copy.deepcopy(slot.optimizer.state_dict()),
        "scheduler": copy.deepcopy(slot.scheduler.state_dict()),
        "ema": {k: v.clone() for k, v in trainer.ema.shadow.items()} if trainer.ema else None,
        "ema_updates": trainer.ema.updates if trainer.ema else None,
        "global_step": trainer.ctx.global_step,
    }


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_skip_nonfinite_leaves_weights_buffers_and_optimizer_state_unchanged(tmp_path: Path, nan_model: str) -> None:
    # Adam (moments, step counts), a one-cycle schedule, an EMA and batch-norm statistics: all must stand still.
    cfg = _cfg([5, 9], "train.skip_nonfinite=true", "train.ema_decay=0.9", "train.log_every=3")
    trainer = Trainer(cfg, run_dir=tmp_path)
    seen: dict[int, dict[str, Any]] = {}

    def before_forward(m: nn.Module, args: Any) -> None:
        if m.training and m.calls + 1 in (5, 6, 7, 9, 10):
            seen[m.calls + 1] = _snapshot(trainer)  # the state entering training forward pass number calls + 1

    trainer.model.register_forward_pre_hook(before_forward)
    results = trainer.fit()
    for bad in (5, 9):
        before, after = seen[bad], seen[bad + 1]  # the state entering the bad batch and entering the next
        assert after["global_step"] == before["global_step"] + 1
        for key in ("model", "optimizer", "scheduler", "ema", "ema_updates"):
            assert _equal(before[key], after[key]), (bad, key)
    # A good step does change them (the comparison above is not vacuous).
    assert not _equal(seen[6]["model"], seen[7]["model"])
    assert not _equal(seen[6]["optimizer"], seen[7]["optimizer"])
    assert trainer.skipped_steps == 2
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["skipped_steps"] == 2
    rows = read_metrics(tmp_path / "metrics.csv")
    logged = {
        int(r["step"]): float(r["train/skipped_steps"]) for r in rows if r.get("train/skipped_steps") not in (None, "")
    }
    assert (logged[3], logged[6], logged[9], logged[12]) == (0, 1, 2, 2)
    assert all(torch.isfinite(torch.tensor(float(r["train/loss"]))) for r in rows if r.get("train/loss"))
    assert results["test/acc"] > 0.5  # training went on past the skipped steps (chance: 0.1)


def test_skip_count_survives_resume(tmp_path: Path, nan_model: str) -> None:
    run = tmp_path / "run"
    first = _cfg([4], "optim.scheduler=none", "train.epochs=1")
    with pytest.raises(TrainingDiverged, match="first at step 4"):
        Trainer(first, run_dir=run).fit()
    # Resumed from the last good checkpoint (none: from the start) with skipping on, then once more.
    Trainer(_cfg([4], "optim.scheduler=none", "train.skip_nonfinite=true", "train.epochs=1"), run_dir=run).fit()
    assert json.loads((run / "results.json").read_text())["skipped_steps"] == 1
    # The resumed process builds a fresh model, whose 4th forward pass is NaN again: 1 + 1.
    again = _cfg([4], "optim.scheduler=none", "train.skip_nonfinite=true", "train.epochs=2")
    Trainer(again, run_dir=run, resume=True).fit()
    assert json.loads((run / "results.json").read_text())["skipped_steps"] == 2


def test_skip_nonfinite_must_be_a_boolean() -> None:
    with pytest.raises(UserError, match="train.skip_nonfinite"):
        load_config("digits-mlp", overrides=["train.skip_nonfinite=sometimes"])
