"""The trainer end to end on the embedded digits and diabetes data (in process, seconds each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.config import load_config
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.loggers import read_metrics
from archzoo.engine.run import load_run
from archzoo.engine.trainer import Trainer

FAST = ["log.progress=none", "log.plots=false", "train.threads=1"]


def train(tmp_path: Path, recipe: str = "digits-mlp", *overrides: str, name: str = "run") -> tuple[Trainer, dict]:
    cfg = load_config(recipe, None, [*FAST, *overrides])
    tr = Trainer(cfg, run_dir=tmp_path / name)
    return tr, tr.fit()


def test_run_directory_and_best_weights(tmp_path: Path) -> None:
    tr, res = train(tmp_path, "digits-mlp", "train.epochs=4")
    run = tr.run_dir
    summary = json.loads((run / "results.json").read_text())
    assert summary["epochs_run"] == 4
    # The test figures come from the best checkpoint, not the last epoch's weights.
    best = ckpt.load_weights_file(run / "checkpoints" / "best.safetensors")
    final = ckpt.load_weights_file(run / "model.safetensors")
    assert all(torch.equal(best[k], final[k]) for k in best)
    val_rows = [r for r in read_metrics(run / "metrics.csv") if "val/acc" in r and "test/acc" not in r]
    assert len(val_rows) == 4
    assert res["val/acc"] == pytest.approx(max(r["val/acc"] for r in val_rows), abs=1e-4)
    assert summary["best_epoch"] == 1 + max(range(4), key=lambda i: (val_rows[i]["val/acc"], -i))
    assert 0.5 < res["test/acc"] <= 1.0


def test_tensorboard_reads_the_events(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tr, _ = train(tmp_path, "digits-mlp", "train.epochs=2", "train.log_every=5")
    ea = EventAccumulator(str(tr.run_dir / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"train/loss", "val/acc", "train/lr"} <= tags
    assert [e.step for e in ea.Scalars("val/acc")][:2] == [tr.steps_per_epoch, 2 * tr.steps_per_epoch]


def test_early_stopping(tmp_path: Path) -> None:
    # A min_delta no epoch can beat: every epoch after the first counts as no gain.
    tr, _ = train(
        tmp_path, "digits-mlp", "train.epochs=10", "train.early_stopping=2", "train.min_delta=1.0",
        "train.monitor=val/acc", "train.mode=max",
    )  # fmt: skip
    summary = json.loads((tr.run_dir / "results.json").read_text())
    assert summary["stopped_early"] is True
    assert summary["epochs_run"] == 3
    assert summary["best_epoch"] == 1


def test_max_steps_and_grad_accumulation_count_optimizer_steps(tmp_path: Path) -> None:
    tr, _ = train(tmp_path, "digits-mlp", "train.epochs=5", "train.max_steps=7", "train.grad_accum=3")
    assert tr.ctx.global_step == 7
    assert tr.ctx.micro_step == 21


def test_max_time_stops_at_an_epoch_end_and_still_tests(tmp_path: Path) -> None:
    # A limit every epoch exceeds: the run stops after its first epoch and still tests its best weights.
    tr, res = train(tmp_path, "digits-mlp", "train.epochs=5", "train.max_time=1e-9")
    summary = json.loads((tr.run_dir / "results.json").read_text())
    assert summary["stopped_for_time"] is True and summary["stopped_early"] is False
    assert summary["epochs_run"] == 1
    assert "test/acc" in res
    train(tmp_path, "digits-mlp", "train.epochs=2", name="unlimited")
    unlimited = json.loads((tmp_path / "unlimited" / "results.json").read_text())
    assert unlimited["stopped_for_time"] is False and unlimited["epochs_run"] == 2


def test_plateau_schedule_lowers_the_lr(tmp_path: Path) -> None:
    tr, _ = train(
        tmp_path, "digits-mlp", "train.epochs=4", "optim.scheduler=plateau", "optim.plateau_patience=0",
        "train.monitor=val/loss", "train.mode=min", "train.min_delta=10",
    )  # fmt: skip
    lr = tr.ctx.slots["main"].optimizer.param_groups[0]["lr"]
    assert lr < tr.cfg.optim.lr


def test_bf16_autocast_trains(tmp_path: Path) -> None:
    tr, res = train(tmp_path, "digits-mlp", "train.epochs=2", "train.precision=bf16")
    assert json.loads((tr.run_dir / "results.json").read_text())["precision"] == "bf16"
    assert res["test/acc"] > 0.3


def test_precision_auto_measures_and_chooses(tmp_path: Path) -> None:
    tr, _ = train(tmp_path, "digits-mlp", "train.epochs=1", "train.precision=auto")
    assert tr.precision in ("fp32", "bf16")


def test_seeded_runs_are_identical_and_seeds_differ(tmp_path: Path) -> None:
    a, _ = train(tmp_path, "digits-mlp", "train.epochs=1", name="a")
    b, _ = train(tmp_path, "digits-mlp", "train.epochs=1", name="b")
    c, _ = train(tmp_path, "digits-mlp", "train.epochs=1", "train.seed=1", name="c")
    wa, wb, wc = (ckpt.load_weights_file(t.run_dir / "model.safetensors") for t in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_regression_reports_original_units(tmp_path: Path) -> None:
    tr, res = train(tmp_path, "diabetes-mlp", "train.epochs=30")
    # Diabetes progression spans 25..346; a useful model is far below the target's std (~77).
    assert 35 < res["test/rmse"] < 75
    assert res["test/r2"] > 0.2


def test_init_scheme_and_weight_decay_groups(tmp_path: Path) -> None:
    cfg = load_config("digits-cnn", None, [*FAST, "model.init=orthogonal", "optim.weight_decay=0.1"])
    tr = Trainer(cfg, run_dir=tmp_path / "init")
    conv = next(
        m for m in tr.model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels <= m.weight[0].numel()
    )
    w = conv.weight.reshape(conv.out_channels, -1)
    torch.testing.assert_close(w @ w.T, torch.eye(conv.out_channels), atol=1e-4, rtol=0)
    groups = tr.ctx.slots["main"].optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.ndim == 1 for p in groups[1]["params"])


def test_resume_of_a_finished_run_without_checkpoint_is_an_error(tmp_path: Path) -> None:
    from archzoo.errors import UserError

    cfg = load_config("digits-mlp", None, FAST)
    with pytest.raises(UserError, match="no checkpoint"):
        Trainer(cfg, run_dir=tmp_path / "empty", resume=True).fit()


DIGITS_GAN = ["data.name=digits", "data.args={}", "model.name=cgan", "model.args.arch=mlp", "train.epochs=3"]


def test_a_task_without_monitor_keeps_the_last_weights(tmp_path: Path) -> None:
    """GAN tasks monitor nothing: the saved model is the last epoch's, with no best checkpoint."""
    tr, res = train(tmp_path, "fashion-dcgan", *DIGITS_GAN)
    run = tr.run_dir
    assert not (run / "checkpoints" / "best.safetensors").exists()
    last_weights, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(run / "checkpoints"))
    final = ckpt.load_weights_file(run / "model.safetensors")
    assert final.keys() == last_weights.keys()
    assert all(torch.equal(final[k], last_weights[k]) for k in final)
    summary = json.loads((run / "results.json").read_text())
    assert summary["monitor"] is None and summary["best_epoch"] == 3 == res["best_epoch"]


def test_monitor_can_be_chosen_for_a_gan(tmp_path: Path) -> None:
    tr, _ = train(tmp_path, "fashion-dcgan", *DIGITS_GAN, "train.monitor=val/mmd")
    assert (tr.run_dir / "checkpoints" / "best.safetensors").is_file()
    assert json.loads((tr.run_dir / "results.json").read_text())["monitor"] == "val/mmd"


@pytest.mark.parametrize("extra", ["train.early_stopping=2", "optim.scheduler=plateau"])
def test_early_stopping_without_a_monitor_is_one_sentence(tmp_path: Path, extra: str) -> None:
    from archzoo.errors import UserError

    with pytest.raises(UserError, match="needs a monitored metric.*set train.monitor"):
        train(tmp_path, "fashion-dcgan", *DIGITS_GAN, extra)


def test_load_run_last_weights_say_how_far_they_were_trained(tmp_path: Path) -> None:
    tr, _ = train(tmp_path, "digits-mlp", "train.epochs=3", "train.checkpoint_every=5")
    run = load_run(tr.run_dir, weights="last")
    assert (run.epoch, run.batch_in_epoch) == (3, 0)
    last = ckpt.load_checkpoint(ckpt.latest_checkpoint(tr.run_dir / "checkpoints"))[0]
    assert all(torch.equal(p, last[k]) for k, p in run.model.state_dict().items() if k in last)
