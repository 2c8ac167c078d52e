"""Training health: gradient-norm logging, parameter histograms and max-norm constraints."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.config import load_config
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.context import OptimizerSlot, TrainContext, apply_max_norm, max_norm_targets
from archzoo.engine.loggers import read_metrics
from archzoo.engine.optim import param_groups
from archzoo.engine.trainer import Trainer
from archzoo.errors import UserError

FAST = ["log.progress=none", "log.plots=false", "train.threads=1", "train.epochs=1", "optim.scheduler=none"]
DIGITS_GAN = ["data.name=digits", "data.args={}", "model.name=cgan", "model.args.arch=mlp"]


def train(tmp_path: Path, recipe: str, *overrides: str) -> Trainer:
    tr = Trainer(load_config(recipe, None, [*FAST, *overrides]), run_dir=tmp_path / "run")
    tr.fit()
    return tr


def one_sentence_error(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "archzoo", *args], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("archzoo: error: "), r.stderr
    return lines[0]


# ----------------------------------------------------------------------------- gradient norm


def _linear_step(ctx: TrainContext, model: nn.Module, x: torch.Tensor) -> float:
    """One backward and step; returns the global gradient norm computed by hand before the step."""
    model(x).pow(2).sum().backward()
    expected = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    ctx.step()
    return expected


@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_grad_norm_is_the_mean_of_the_norms_before_clipping(clip: float) -> None:
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = TrainContext({"main": OptimizerSlot(opt, model)}, torch.device("cpu"), grad_clip=clip, log_grad_norm=True)
    norms = [_linear_step(ctx, model, torch.randn(4, 5)) for _ in range(3)]
    assert min(norms) > 10 * clip  # the clip acts, and the logged norm is the one before it
    got = ctx.pop_grad_norms()
    assert got.keys() == {"train/grad_norm"}
    assert got["train/grad_norm"] == pytest.approx(sum(norms) / 3, rel=1e-5)
    assert ctx.pop_grad_norms() == {}  # reset: the next row covers the steps after this one
    last = _linear_step(ctx, model, torch.randn(4, 5))
    assert ctx.pop_grad_norms()["train/grad_norm"] == pytest.approx(last, rel=1e-5)


def test_grad_norm_leaves_out_an_infinite_step() -> None:
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ctx = TrainContext({"main": OptimizerSlot(opt, model)}, torch.device("cpu"), log_grad_norm=True)
    good = _linear_step(ctx, model, torch.ones(1, 2))
    model(torch.ones(1, 2)).mul(float("inf")).sum().backward()  # as a skipped fp16 step would see it
    ctx.step()
    assert ctx.pop_grad_norms()["train/grad_norm"] == pytest.approx(good, rel=1e-5)


def test_grad_norm_in_metrics_csv_and_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    clip = 1e-3
    tr = train(tmp_path, "digits-mlp", "train.max_steps=6", "train.log_every=2", "train.log_grad_norm=true",
               f"train.grad_clip={clip}")  # fmt: skip
    rows = [r for r in read_metrics(tr.run_dir / "metrics.csv") if "train/grad_norm" in r]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(math.isfinite(r["train/grad_norm"]) and r["train/grad_norm"] > clip for r in rows)
    ea = EventAccumulator(str(tr.run_dir / "tensorboard"))
    ea.Reload()
    events = ea.Scalars("train/grad_norm")
    assert [e.step for e in events] == [2, 4, 6]
    assert [e.value for e in events] == pytest.approx([r["train/grad_norm"] for r in rows], rel=1e-4)


class Killed(Exception):
    """Stands for a kill right after a checkpoint was written."""


def test_grad_norm_rows_of_a_resumed_run_equal_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint between two rows carries the norms summed so far: the resumed row averages the same steps."""
    args = [*FAST, "train.max_steps=8", "train.log_every=2", "train.checkpoint_every=3", "train.log_grad_norm=true",
            "log.tensorboard=false"]  # fmt: skip

    def norms(run: Path) -> dict[int, float]:
        return {r["step"]: r["train/grad_norm"] for r in read_metrics(run / "metrics.csv") if "train/grad_norm" in r}

    Trainer(load_config("digits-mlp", None, args), run_dir=tmp_path / "whole").fit()
    save = Trainer._save

    def save_then_die(self: Trainer) -> None:
        save(self)
        if self.ctx.global_step == 3:  # step 3's norm is summed and not yet logged (rows at 2, 4, ...)
            raise Killed

    monkeypatch.setattr(Trainer, "_save", save_then_die)
    with pytest.raises(Killed):
        Trainer(load_config("digits-mlp", None, args), run_dir=tmp_path / "cut").fit()
    monkeypatch.setattr(Trainer, "_save", save)
    Trainer(load_config("digits-mlp", None, args), run_dir=tmp_path / "cut", resume=True).fit()
    a, b = norms(tmp_path / "whole"), norms(tmp_path / "cut")
    assert sorted(a) == sorted(b) == [2, 4, 6, 8]
    assert [b[k] for k in sorted(b)] == pytest.approx([a[k] for k in sorted(a)], rel=1e-6)


def test_grad_norm_without_the_option_is_not_logged(tmp_path: Path) -> None:
    tr = train(tmp_path, "digits-mlp", "train.max_steps=4", "train.log_every=2", "log.tensorboard=false")
    assert not any("train/grad_norm" in r for r in read_metrics(tr.run_dir / "metrics.csv"))


def test_a_gan_logs_one_grad_norm_per_optimizer(tmp_path: Path) -> None:
    tr = train(tmp_path, "fashion-dcgan", *DIGITS_GAN, "train.max_steps=3", "train.log_every=1",
               "train.log_grad_norm=true", "log.tensorboard=false")  # fmt: skip
    rows = [r for r in read_metrics(tr.run_dir / "metrics.csv") if "train/loss" in r and r["step"] <= 3]
    assert [r["step"] for r in rows[:3]] == [1, 2, 3]
    for r in rows[:3]:
        assert "train/grad_norm" not in r
        assert r["train/grad_norm_generator"] > 0 and r["train/grad_norm_discriminator"] > 0
        assert r["train/grad_norm_generator"] != r["train/grad_norm_discriminator"]


# ----------------------------------------------------------------------------- histograms


def test_histograms_of_weights_and_gradients(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import HISTOGRAMS, EventAccumulator

    tr = train(tmp_path, "digits-mlp", "train.max_steps=4", "train.log_histograms=2")
    ea = EventAccumulator(str(tr.run_dir / "tensorboard"), size_guidance={HISTOGRAMS: 0})
    ea.Reload()
    names = [k for k, _ in tr.model.named_parameters()]
    assert set(ea.Tags()[HISTOGRAMS]) == {f"weights/{k}" for k in names} | {f"grads/{k}" for k in names}
    for k in names:
        assert [e.step for e in ea.Histograms(f"weights/{k}")] == [2, 4]
        assert [e.step for e in ea.Histograms(f"grads/{k}")] == [2, 4]
    # The step-4 weight histograms describe the weights of the step-4 checkpoint.
    weights, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tr.run_dir / "checkpoints"))
    for k in names:
        h = ea.Histograms(f"weights/{k}")[-1].histogram_value
        w = weights[k].double()
        assert h.num == w.numel()
        assert (h.min, h.max) == (pytest.approx(float(w.min())), pytest.approx(float(w.max())))
        assert h.sum == pytest.approx(float(w.sum()), abs=1e-4)
        assert sum(h.bucket) == w.numel()
        g = ea.Histograms(f"grads/{k}")[-1].histogram_value
        assert g.num == w.numel() and g.sum_squares > 0


def test_histograms_refuse_a_negative_period_and_need_tensorboard(tmp_path: Path) -> None:
    line = one_sentence_error("train", "--run-dir", str(tmp_path / "r"), "digits-mlp", "train.log_histograms=-1")
    assert "train.log_histograms must be a non-negative" in line
    with pytest.raises(UserError, match="needs log.tensorboard=true"):
        train(tmp_path, "digits-mlp", "train.log_histograms=5", "log.tensorboard=false")


# ----------------------------------------------------------------------------- max-norm


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.conv = nn.Conv2d(1, 3, 3)
        self.up = nn.ConvTranspose2d(3, 2, 2)


def _max_norm_step(net: Net, c: float) -> None:
    groups, decayed = param_groups(net, 0.0)
    opt = torch.optim.SGD(groups, lr=1e4)
    slot = OptimizerSlot(opt, net, penalised=decayed)
    if c:
        slot.max_norm, slot.max_normed = c, max_norm_targets(net, decayed)
    ctx = TrainContext({"main": slot}, torch.device("cpu"))
    torch.manual_seed(1)
    # Only the first two output units of fc and conv and the first of up get a gradient.
    loss = net.fc(torch.randn(8, 4))[:, :2].sum() + net.conv(torch.randn(2, 1, 5, 5))[:, :2].sum()
    loss = loss + net.up(torch.randn(2, 3, 3, 3))[:, :1].sum() + net.norm(torch.randn(8, 6)).mul(torch.randn(6)).sum()
    ctx.backward(loss)
    ctx.step()


def test_max_norm_rescales_the_rows_over_c_and_leaves_the_rest() -> None:
    c = 0.5
    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # every unit starts inside the ball
        for w in (net.fc.weight, net.conv.weight, net.up.weight):
            w.mul_(0.1)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    plain = Net()
    plain.load_state_dict(before)
    _max_norm_step(net, c)
    _max_norm_step(plain, 0.0)
    eps = 1e-5
    fc_rows = net.fc.weight.norm(dim=1)  # (out,): per output unit
    conv_rows = net.conv.weight.flatten(1).norm(dim=1)  # (out,)
    up_rows = net.up.weight.transpose(0, 1).flatten(1).norm(dim=1)  # (out,): dim 1 of (in, out, k, k)
    for rows, plain_rows in (
        (fc_rows, plain.fc.weight.norm(dim=1)),
        (conv_rows, plain.conv.weight.flatten(1).norm(dim=1)),
        (up_rows, plain.up.weight.transpose(0, 1).flatten(1).norm(dim=1)),
    ):
        assert (rows <= c + eps).all()
        assert (plain_rows[:1] > 100 * c).all()  # the huge step pushed the trained units far out
    assert torch.allclose(fc_rows[:2], torch.full((2,), c), atol=eps)
    # Units without a gradient stayed inside: left bit for bit as they were.
    assert torch.equal(net.fc.weight[2:], before["fc.weight"][2:])
    assert torch.equal(net.conv.weight[2:], before["conv.weight"][2:])
    assert torch.equal(net.up.weight[:, 1:], before["up.weight"][:, 1:])
    # The constrained rows keep their direction.
    cos = nn.functional.cosine_similarity(net.fc.weight[:2], plain.fc.weight[:2], dim=1)
    assert torch.allclose(cos, torch.ones(2), atol=1e-6)
    # Biases and the norm's affine parameters are untouched by the constraint.
    for k in ("fc.bias", "norm.weight", "norm.bias", "conv.bias", "up.bias"):
        assert torch.equal(net.state_dict()[k], plain.state_dict()[k]), k
    assert net.norm.weight.abs().max() > 100 * c and net.fc.bias.abs().max() > 100 * c


def test_max_norm_skips_frozen_weights() -> None:
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.fill_(5.0)
    lin.weight.requires_grad_(False)
    apply_max_norm(max_norm_targets(lin, [lin.weight]), 1.0)
    assert torch.equal(lin.weight, torch.full((2, 3), 5.0))


def test_max_norm_through_the_trainer(tmp_path: Path) -> None:
    c = 0.3
    tr = train(tmp_path, "digits-mlp", "train.max_steps=5", "optim.lr=1.0", "optim.name=sgd",
               f"optim.weight_max_norm={c}", "log.tensorboard=false")  # fmt: skip
    weights, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tr.run_dir / "checkpoints"))
    matrices = [k for k, v in weights.items() if v.ndim == 2]
    assert matrices
    for k in matrices:
        assert (weights[k].norm(dim=1) <= c + 1e-5).all(), k
    assert any((weights[k].norm(dim=1) > c - 1e-4).any() for k in matrices)  # the constraint was binding


def test_max_norm_refuses_a_negative_radius(tmp_path: Path) -> None:
    line = one_sentence_error("train", "--run-dir", str(tmp_path / "r"), "digits-mlp", "optim.weight_max_norm=-1")
    assert "optim.weight_max_norm must be non-negative" in line
