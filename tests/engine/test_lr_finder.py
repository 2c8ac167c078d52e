"""The LR range test: its smoothing, divergence and suggestion, and that it leaves runs untouched."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from archzoo.cli import main
from archzoo.config import load_config
from archzoo.engine.lr_finder import centred_mean, divergence, lr_find, pick_rule, smooth, suggest, suggest_minimum
from archzoo.engine.trainer import Trainer
from archzoo.errors import UserError

QUICK = ["train.threads=1", "log.progress=none", "log.tensorboard=false", "log.plots=false"]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("archzoo: error: ") and "Traceback" not in err
    return lines[0]


def test_smoothing_is_the_bias_corrected_moving_average() -> None:
    losses = [4.0, 2.0, 1.0, 3.0]
    beta = 0.5
    want, avg = [], 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        want.append(avg / (1 - beta ** (i + 1)))
    assert smooth(losses, beta) == pytest.approx(want, abs=1e-12)
    assert smooth([2.0, 2.0, 2.0], 0.98) == pytest.approx([2.0, 2.0, 2.0], abs=1e-12)  # no warm-up bias


def test_divergence_is_the_first_step_past_four_times_the_best() -> None:
    assert divergence([3.0, 2.0, 1.0, 3.9, 4.1]) == 4
    assert divergence([3.0, 2.0, 1.0, 3.9]) is None
    assert divergence([3.0, float("nan")]) == 1


def test_suggestion_is_the_steepest_descent_before_divergence() -> None:
    lrs = [10.0 ** (-6 + i * 0.5) for i in range(12)]
    # Flat, then a fall that is steepest between 1e-3 and 1e-2, then a blow-up (ignored).
    s = [2.0, 2.0, 2.0, 1.99, 1.9, 1.7, 1.0, 0.6, 0.5, 0.48, 1.5, 50.0]
    stop = divergence(s)
    assert stop == 11  # 50 > 4 * 0.48; 1.5 is not past 4x yet
    got = suggest(lrs, s, stop)
    assert got == pytest.approx(lrs[6], rel=1e-9)  # np.gradient's steepest point sits at 10**-3
    with pytest.raises(UserError, match="too soon"):
        suggest(lrs, s, 2)


def test_centred_mean_averages_each_step_with_its_neighbours() -> None:
    got = centred_mean([1.0, 2.0, 6.0, 3.0, 0.0], 3)
    assert got.tolist() == pytest.approx([4 / 3, 3.0, 11 / 3, 3.0, 1.0], abs=1e-12)  # ends padded with themselves


def test_minimum_is_where_the_loss_stops_falling_without_the_trailing_lag() -> None:
    n = 100
    lrs = [1e-7 * (1e8) ** (i / (n - 1)) for i in range(n)]
    # A loss that falls until step 60 (lr ~6e-3), then climbs: noisy around that shape.
    gen = torch.Generator().manual_seed(0)
    noise = (0.02 * torch.randn(n, generator=gen)).tolist()
    losses = [2.5 - 1.5 * min(i, 60) / 60 + 0.08 * max(0, i - 60) + noise[i] for i in range(n)]
    got = suggest_minimum(lrs, losses, divergence(smooth(losses)))
    assert lrs[57] <= got <= lrs[63]
    # The trailing average of the divergence check lags: its minimum sits later in the sweep.
    trailing = smooth(losses)
    assert trailing.index(min(trailing)) >= 66
    # A divergence step bounds the search; too few steps before it is refused.
    assert suggest_minimum(lrs, losses, 40) == pytest.approx(lrs[39])
    with pytest.raises(UserError, match="too soon"):
        suggest_minimum(lrs, losses, 2)


def test_auto_rule_reads_the_minimum_for_onecycle_and_the_steepest_otherwise() -> None:
    assert pick_rule("auto", "onecycle") == "minimum"
    for sched in ("none", "cosine", "step", "warmup_cosine", "plateau"):
        assert pick_rule("auto", sched) == "steepest"
    assert pick_rule("steepest", "onecycle") == "steepest" and pick_rule("minimum", "none") == "minimum"
    with pytest.raises(UserError, match="--rule must be one of auto, steepest, minimum"):
        pick_rule("valley", "none")


@pytest.mark.parametrize(("scheduler", "rule"), [("onecycle", "minimum"), ("none", "steepest")])
def test_lr_find_suggests_by_the_slot_schedule(tmp_path: Path, scheduler: str, rule: str) -> None:
    result = lr_find(_trainer(tmp_path, f"optim.scheduler={scheduler}"), steps=20, start=1e-5, end=1.0)
    assert result.rule == rule
    assert result.suggestion == (result.minimum if rule == "minimum" else result.steepest)
    assert result.steepest is not None and result.minimum is not None
    forced = lr_find(_trainer(tmp_path, f"optim.scheduler={scheduler}"), steps=20, start=1e-5, end=1.0, rule="steepest")
    assert forced.rule == "steepest" and forced.suggestion == forced.steepest


def _trainer(tmp_path: Path, *extra: str) -> Trainer:
    cfg = load_config("digits-mlp", None, [*QUICK, *extra])
    return Trainer(cfg, run_dir=tmp_path / "unused")


def test_lr_find_leaves_the_trainer_model_and_optimizer_untouched(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    # Give the optimizer some state first, so that a sweep writing into it would show.
    batch = next(iter(trainer.data.train.batches(64, shuffle=True, seed=0, epoch=0)))
    trainer.task.training_step(trainer.model, batch, trainer.ctx)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    opt = trainer.ctx.slots["main"].optimizer
    opt_state = {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(opt.state.values())}
    lr_before = [g["lr"] for g in opt.param_groups]
    rng = torch.get_rng_state()
    result = lr_find(trainer, steps=30, start=1e-5, end=1.0)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for i, s in enumerate(opt.state.values()):
        for k, v in s.items():
            assert torch.equal(v, opt_state[i][k])
    assert [g["lr"] for g in opt.param_groups] == lr_before
    assert torch.equal(torch.get_rng_state(), rng)
    # An exponential sweep from start: each step multiplies the rate by (end/start)^(1/(N-1)).
    n = len(result.lrs)
    assert 10 <= n <= 30 and result.lrs[0] == pytest.approx(1e-5)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert ratios == pytest.approx([(1.0 / 1e-5) ** (1 / 29)] * (n - 1), rel=1e-9)
    assert all(math.isfinite(v) for v in result.losses[: n // 2])
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    # The recorded losses are the real training losses: the first is the loss of the model as built.
    assert 1.5 < result.losses[0] < 3.5  # ~ln(10) for ten classes


def _hashes(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and (p.suffix in (".safetensors", ".pt") or "checkpoints" in p.parts)
    }


def test_lr_find_on_a_run_reads_it_and_writes_an_override_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "digits-mlp", "train.epochs=1", *QUICK]) == 0
    capsys.readouterr()
    before = _hashes(run)
    assert any(k.startswith("checkpoints/") for k in before) and "model.safetensors" in before
    over = tmp_path / "lr.yaml"
    rc = main(["lr-find", str(run), "--steps", "25", "--start", "1e-5", "--end", "3", "--apply", str(over)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert _hashes(run) == before  # weights and optimizer state byte-identical
    plot = Path(out["plot"])
    assert plot == run / "plots" / "lr_find.png" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["slot"] == "main" and 1e-5 <= out["suggested_lr"] <= 3
    assert yaml.safe_load(over.read_text()) == {"optim": {"lr": float(f"{out['suggested_lr']:.4g}")}}
    cfg = load_config("digits-mlp", over)  # what train --config reads
    assert cfg.optim.lr == pytest.approx(out["suggested_lr"], rel=1e-3)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--steps", "2"], "--steps must be at least 5"),
        (["--start", "1", "--end", "0.1"], "0 < --start < --end"),
        (["--slot", "critic"], "--slot critic names no optimizer"),
        (["--loss", "loss_g"], "logs no 'loss_g'"),
        (["optim.lrr=1"], "Unknown config key 'optim.lrr'"),
    ],
)
def test_lr_find_bad_input_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    rc = main(["lr-find", "digits-mlp", *QUICK, "--steps", "6", "--out", str(tmp_path / "p.png"), *args])
    assert rc == 2
    assert needle in one_error_line(capsys.readouterr().err)


def test_a_gan_needs_slot_and_gets_the_slot_lr(tmp_path: Path, data_root: Path) -> None:
    base = [sys.executable, "-m", "archzoo", "lr-find", "fashion-dcgan", "data.batch_size=16", *QUICK,
            "--data-dir", str(data_root), "--out", str(tmp_path / "p.png")]  # fmt: skip
    r = subprocess.run([*base, "--steps", "6"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    line = one_error_line(r.stderr)
    assert "has 2 optimizers (generator, discriminator)" in line and "--slot" in line
    over = tmp_path / "g.yaml"
    r = subprocess.run([*base, "--steps", "6", "--slot", "generator", "--loss", "loss_g", "--apply", str(over)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lr = json.loads(r.stdout)["suggested_lr"]
    assert yaml.safe_load(over.read_text()) == {"optim": {"slots": {"generator": {"lr": float(f"{lr:.4g}")}}}}
    cfg = load_config("fashion-dcgan", over)
    assert cfg.optim.for_slot("generator").lr == pytest.approx(lr, rel=1e-3)
    assert cfg.optim.for_slot("discriminator").lr == pytest.approx(2e-4)
