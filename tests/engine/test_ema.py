"""train.ema_decay: the weight average, what the engine does with it, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.config import load_config
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.ema import WeightEMA
from archzoo.engine.run import load_run
from archzoo.engine.trainer import EMA_FILE, Trainer
from archzoo.errors import UserError

FAST = ["log.progress=none", "log.plots=false", "train.threads=1", "model.args.batch_norm=true"]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_update_follows_the_formula_with_warmup() -> None:
    net = _net()
    ema = WeightEMA(net, decay=0.9)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    expected = {k: v.clone() for k, v in start.items() if v.is_floating_point()}
    for n in range(1, 30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * n)
        net.train()(torch.randn(5, 3))  # moves the running statistics and the batch count
        d = min(0.9, (1 + n) / (10 + n))
        assert ema.current_decay() == pytest.approx(d)
        ema.update(net)
        live = net.state_dict()
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * live[k]
    for k, v in expected.items():
        torch.testing.assert_close(ema.shadow[k], v, rtol=1e-5, atol=1e-5)
    # The integer batch count is copied, not averaged.
    assert int(ema.shadow["1.num_batches_tracked"]) == 29 == int(net.state_dict()["1.num_batches_tracked"])
    assert ema.updates == 29


def test_applied_swaps_in_and_restores() -> None:
    net = _net()
    ema = WeightEMA(net, decay=0.5)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net)
    own = {k: v.clone() for k, v in net.state_dict().items()}
    weight = net[0].weight
    with ema.applied(net):
        torch.testing.assert_close(net[0].weight, ema.shadow["0.weight"])
        assert not torch.equal(net[0].weight, own["0.weight"])
    assert net[0].weight is weight  # same tensor (optimizers keep their references)
    assert all(torch.equal(v, own[k]) for k, v in net.state_dict().items())


def test_bad_decay_is_a_config_error() -> None:
    with pytest.raises(UserError, match="train.ema_decay must be in"):
        load_config("digits-mlp", None, ["train.ema_decay=1.0"])


def _run(tmp_path: Path, name: str, *overrides: str) -> tuple[Trainer, dict]:
    cfg = load_config("digits-mlp", None, [*FAST, "optim.scheduler=none", *overrides])
    tr = Trainer(cfg, run_dir=tmp_path / name)
    return tr, tr.fit()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_weights_file(path)


def test_trainer_evaluates_and_saves_the_average(tmp_path: Path) -> None:
    plain, _ = _run(tmp_path, "plain", "train.epochs=1")
    avg, res = _run(tmp_path, "avg", "train.epochs=1", "train.ema_decay=0.99")
    last = ckpt.latest_checkpoint(avg.ckpt_dir)
    assert last is not None
    raw, averaged = _weights(last / ckpt.WEIGHTS), _weights(last / EMA_FILE)
    # The average does not change training: the raw weights are those of the run without it.
    ref = _weights(plain.run_dir / "model.safetensors")
    assert all(torch.equal(raw[k], ref[k]) for k in ref)
    # The saved model and the best checkpoint are the average, not the raw weights.
    final = _weights(avg.run_dir / "model.safetensors")
    best = _weights(avg.ckpt_dir / "best.safetensors")
    assert all(torch.equal(final[k], averaged[k]) and torch.equal(best[k], averaged[k]) for k in final)
    assert any(not torch.equal(final[k], raw[k]) for k in final if final[k].is_floating_point())
    state = torch.load(last / ckpt.STATE, weights_only=True)
    assert state["ema_updates"] == avg.steps_per_epoch
    # The reported test figure is the average's, and load_run gives the same weights back.
    again = load_run(avg.run_dir)
    assert again.evaluate("test")["test/acc"] == pytest.approx(res["test/acc"], abs=1e-6)
    # --weights last is the checkpoint's average, --weights raw its own weights.
    for which, expect in (("last", averaged), ("raw", raw)):
        got = load_run(avg.run_dir, weights=which).model.state_dict()
        assert all(torch.equal(got[k].cpu(), expect[k]) for k in expect), which
    summary = json.loads((avg.run_dir / "results.json").read_text())
    assert summary["ema"] == {"decay": 0.99, "from_step": 0}
    assert summary["metrics"]["test/acc"] == pytest.approx(res["test/acc"])


def test_resume_with_ema_is_exact(tmp_path: Path) -> None:
    whole, _ = _run(tmp_path, "whole", "train.epochs=3", "train.ema_decay=0.95")
    part, _ = _run(tmp_path, "part", "train.epochs=1", "train.ema_decay=0.95")
    cfg = load_config(None, part.run_dir / "config.yaml", ["train.epochs=3"])
    Trainer(cfg, run_dir=part.run_dir, resume=True).fit()
    for name in (ckpt.WEIGHTS, EMA_FILE):
        a = _weights(ckpt.latest_checkpoint(whole.ckpt_dir) / name)  # type: ignore[operator]
        b = _weights(ckpt.latest_checkpoint(part.ckpt_dir) / name)  # type: ignore[operator]
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = _weights(whole.run_dir / "model.safetensors"), _weights(part.run_dir / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_switching_ema_on_at_resume_starts_from_the_resumed_weights(tmp_path: Path) -> None:
    part, _ = _run(tmp_path, "part", "train.epochs=1")
    first = _weights(part.run_dir / "checkpoints" / ckpt.latest_checkpoint(part.ckpt_dir).name / ckpt.WEIGHTS)  # type: ignore[union-attr]
    cfg = load_config(None, part.run_dir / "config.yaml", ["train.epochs=2", "train.ema_decay=0.9"])
    tr = Trainer(cfg, run_dir=part.run_dir, resume=True)
    tr.fit()
    last = ckpt.latest_checkpoint(tr.ckpt_dir)
    state = torch.load(last / ckpt.STATE, weights_only=True)  # type: ignore[operator]
    assert state["ema_updates"] == tr.steps_per_epoch  # counted from the resume, not from step 0
    summary = json.loads((tr.run_dir / "results.json").read_text())
    assert summary["ema"] == {"decay": 0.9, "from_step": tr.steps_per_epoch}
    averaged, raw = _weights(last / EMA_FILE), _weights(last / ckpt.WEIGHTS)  # type: ignore[operator]
    k = next(k for k in raw if raw[k].is_floating_point() and raw[k].dim() == 2)
    # Between the resumed weights and the last ones: closer to the last (decay 0.9 over ~25 steps).
    assert not torch.equal(averaged[k], raw[k]) and not torch.equal(averaged[k], first[k])
    assert (averaged[k] - raw[k]).norm() < (first[k] - raw[k]).norm()
