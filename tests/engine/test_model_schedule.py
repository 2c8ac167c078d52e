"""The engine's schedule hook for models (``on_train_progress``): the dynamic CNN's temperature anneal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine.run import load_run
from archzoo.engine.trainer import Trainer
from archzoo.errors import UserError
from archzoo.layers.dynamic_conv import DynamicConv2d
from archzoo.models.dynamic_cnn import dynamic_cnn

FAST = ["log.progress=none", "log.plots=false", "train.threads=1"]
DYNAMIC = ["model.name=dynamic_cnn", "model.args={}", "data.batch_size=256", "model.args.num_kernels=2"]


def temperatures(model: torch.nn.Module) -> set[float]:
    return {float(m.attention.temperature) for m in model.modules() if isinstance(m, DynamicConv2d)}


def test_temperature_falls_linearly_from_30_to_1() -> None:
    model = dynamic_cnn(num_classes=10, in_channels=1, anneal_epochs=4)
    assert [model.temperature_at(e) for e in (0, 1, 2, 4, 9)] == [30.0, 22.75, 15.5, 1.0, 1.0]
    assert dynamic_cnn(anneal_epochs=0).temperature_at(7) == 30.0
    model.on_train_progress(2.0)
    assert temperatures(model) == {15.5}
    with pytest.raises(UserError, match="positive"):
        dynamic_cnn(final_temperature=0)


def test_the_trainer_anneals_every_step_and_runs_keep_the_value(tmp_path: Path) -> None:
    cfg = load_config(
        "digits-cnn", None, [*FAST, *DYNAMIC, "train.epochs=1", "train.max_steps=3", "model.args.anneal_epochs=0.3"]
    )
    tr = Trainer(cfg, run_dir=tmp_path / "run")
    seen: list[float] = []
    hook = tr.model.on_train_progress

    def record(epoch: float) -> None:
        seen.append(epoch)
        hook(epoch)

    tr.model.on_train_progress = record  # type: ignore[method-assign]
    tr.fit()
    per_epoch = tr.batches_per_epoch
    assert per_epoch == 6 and seen == pytest.approx([0.0, 1 / 6, 2 / 6])  # before each of the 3 batches
    assert temperatures(tr.model) == {1.0}  # annealed by the third batch (epoch 0.33 > 0.3)
    # The temperature is a buffer: the saved weights carry it into a loaded run.
    assert temperatures(load_run(tmp_path / "run").model) == {1.0}


class Killed(Exception):
    pass


class ScheduledMLP(torch.nn.Module):
    """A digits MLP whose input scale follows the schedule hook, held in a buffer like the temperature."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, num_classes)
        )
        self.register_buffer("scale", torch.tensor(1.0))

    def on_train_progress(self, epoch: float) -> None:
        self.scale.fill_(1.0 + epoch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.scale)


def test_resume_mid_epoch_continues_the_schedule(tmp_path: Path) -> None:
    from archzoo.registry import register_model

    register_model("scheduled_mlp_test")(ScheduledMLP)
    over = [*FAST, "model.name=scheduled_mlp_test", "model.args={}", "train.epochs=2", "train.checkpoint_every=5"]
    whole = Trainer(load_config("digits-mlp", None, over), run_dir=tmp_path / "whole")
    whole.fit()
    first = Trainer(load_config("digits-mlp", None, over), run_dir=tmp_path / "r")
    hook = first.model.on_train_progress

    def die_in_epoch_two(epoch: float) -> None:
        if epoch > 1.5:
            raise Killed  # after a mid-epoch checkpoint, before the end of the run
        hook(epoch)

    first.model.on_train_progress = die_in_epoch_two  # type: ignore[method-assign]
    with pytest.raises(Killed):
        first.fit()
    resumed = Trainer(load_config("digits-mlp", None, over), run_dir=tmp_path / "r", resume=True)
    seen: list[float] = []
    hook2 = resumed.model.on_train_progress
    resumed.model.on_train_progress = lambda e: (seen.append(e), hook2(e))  # type: ignore[method-assign]
    resumed.fit()
    assert 1.0 < seen[0] < 1.5  # resumed inside the second epoch, where the schedule stood
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
