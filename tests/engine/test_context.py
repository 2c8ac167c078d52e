"""Tests for archzoo.engine.context: accumulation, clipping, penalties, autocast, schedules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from archzoo.engine.context import OptimizerSlot, TrainContext

CPU = torch.device("cpu")


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2))


def _data(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g), torch.randn(n, 2, generator=g)


def _ctx(model: nn.Module, lr: float = 0.1, momentum: float = 0.0, **kw: object) -> TrainContext:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    penalised = [p for n, p in model.named_parameters() if n.endswith("weight")]
    slot = OptimizerSlot(opt, model, penalised=penalised, scheduler=kw.pop("scheduler", None))
    return TrainContext({"main": slot}, CPU, **kw)  # type: ignore[arg-type]


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x) - y).pow(2).mean()


def _micro(ctx: TrainContext, loss: torch.Tensor) -> bool:
    """One micro-batch as the trainer runs it: the task's backward and step, then micro_step += 1."""
    ctx.backward(loss)
    stepped = ctx.step()
    assert stepped == (not ctx.accumulating)
    ctx.micro_step += 1
    return stepped


def _params(m: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


def test_accumulating_four_quarters_equals_one_full_batch() -> None:
    x, y = _data(8)
    full, accum = _net(), _net()
    ctx_full = _ctx(full, momentum=0.9)
    ctx_acc = _ctx(accum, momentum=0.9, grad_accum=4)
    for _ in range(2):  # two optimizer steps, so momentum is exercised too
        assert _micro(ctx_full, _loss(full, x, y)) is True
        flags = [_micro(ctx_acc, _loss(accum, x[i * 2 : (i + 1) * 2], y[i * 2 : (i + 1) * 2])) for i in range(4)]
        assert flags == [False, False, False, True]
        for a, b in zip(_params(full), _params(accum), strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert all(p.grad is None for p in accum.parameters())  # zeroed after the step


def test_step_returns_false_on_non_boundary_micro_steps() -> None:
    ctx = _ctx(_net(), grad_accum=3)
    seen = []
    for _ in range(7):
        seen.append(not ctx.accumulating)
        ctx.micro_step += 1
    assert seen == [False, False, True, False, False, True, False]


def test_parameters_do_not_move_while_accumulating() -> None:
    x, y = _data(4)
    model = _net()
    ctx = _ctx(model, grad_accum=2)
    before = _params(model)
    assert _micro(ctx, _loss(model, x, y)) is False
    for a, b in zip(before, _params(model), strict=True):
        assert torch.equal(a, b)
    assert all(p.grad is not None for p in model.parameters())


def test_grad_clip_bounds_the_global_norm() -> None:
    x, y = _data(8)
    model, ref = _net(), _net()
    ctx = _ctx(model, lr=1.0, grad_clip=0.05)
    before = _params(model)
    _micro(ctx, 100 * _loss(model, x, y))
    # the norm before clipping is reported and exceeds the bound
    loss_ref = 100 * _loss(ref, x, y)
    loss_ref.backward()
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ref.parameters()]))
    assert ctx.grad_norm is not None and float(ctx.grad_norm) == pytest.approx(float(total), rel=1e-5)
    assert float(total) > 0.05
    # plain SGD with lr 1: the update is the clipped gradient, whose global norm is the bound
    delta = torch.cat([(a - b).flatten() for a, b in zip(before, _params(model), strict=True)])
    assert float(delta.norm()) == pytest.approx(0.05, rel=1e-4)
    # and it is the same update as torch's clip_grad_norm_ on a copy
    nn.utils.clip_grad_norm_(list(ref.parameters()), 0.05)
    torch.optim.SGD(ref.parameters(), lr=1.0).step()
    for a, b in zip(_params(model), _params(ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_grad_clip_leaves_small_gradients_alone() -> None:
    x, y = _data(8)
    model, ref = _net(), _net()
    _micro(_ctx(model, grad_clip=1e6), _loss(model, x, y))
    _micro(_ctx(ref), _loss(ref, x, y))
    for a, b in zip(_params(model), _params(ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)


@pytest.mark.parametrize(("l1", "l2"), [(0.01, 0.0), (0.0, 0.3), (0.02, 0.5)])
def test_l1_l2_penalty_gradients(l1: float, l2: float) -> None:
    x, y = _data(8)
    model, ref = _net(), _net()
    ctx = _ctx(model, l1=l1, l2=l2)
    ctx.backward(_loss(model, x, y))
    _loss(ref, x, y).backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        expected = q.grad.clone()
        if name.endswith("weight"):  # penalised: d/dw [l1 sum|w| + l2/2 sum w^2] = l1 sign(w) + l2 w
            expected += l1 * torch.sign(q.detach()) + l2 * q.detach()
        torch.testing.assert_close(p.grad, expected, atol=1e-6, rtol=0)


def test_penalty_is_counted_once_per_optimizer_step_under_accumulation() -> None:
    x, y = _data(8)
    model, ref = _net(), _net()
    ctx = _ctx(model, l1=0.01, l2=0.2, grad_accum=2)
    ctx.backward(_loss(model, x[:4], y[:4]))
    ctx.micro_step += 1
    ctx.backward(_loss(model, x[4:], y[4:]))
    _loss(ref, x, y).backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        expected = q.grad.clone()
        if name.endswith("weight"):
            expected += 0.01 * torch.sign(q.detach()) + 0.2 * q.detach()
        torch.testing.assert_close(p.grad, expected, atol=1e-6, rtol=0)


def test_no_penalty_without_penalised_weights() -> None:
    x, y = _data(8)
    model, ref = _net(), _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = TrainContext({"main": OptimizerSlot(opt, model)}, CPU, l1=1.0, l2=1.0)
    ctx.backward(_loss(model, x, y))
    _loss(ref, x, y).backward()
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-7, rtol=0)


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_autocast_dtype(precision: str, dtype: torch.dtype) -> None:
    lin = nn.Linear(4, 3)
    ctx = _ctx(lin, precision=precision)
    with ctx.autocast():
        out = lin(torch.randn(2, 4))
        mm = torch.randn(2, 4) @ torch.randn(4, 3)
    assert out.dtype == dtype and mm.dtype == dtype
    assert lin(torch.randn(2, 4)).dtype == torch.float32  # only inside the context


def test_step_interval_scheduler_steps_once_per_optimizer_step() -> None:
    x, y = _data(8)
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ctx = TrainContext({"main": OptimizerSlot(opt, model, sched, "step")}, CPU, grad_accum=2)
    lrs = []
    for i in range(6):
        _micro(ctx, _loss(model, x[i : i + 2], y[i : i + 2]))
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


@pytest.mark.parametrize("interval", ["epoch", "plateau"])
def test_epoch_and_plateau_schedulers_are_not_stepped_by_the_context(interval: str) -> None:
    x, y = _data(8)
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ctx = TrainContext({"main": OptimizerSlot(opt, model, sched, interval)}, CPU)
    for _ in range(3):
        _micro(ctx, _loss(model, x, y))
    assert opt.param_groups[0]["lr"] == 1.0


def test_grad_scaler_update_equals_unscaled_update() -> None:
    x, y = _data(8)
    model, ref = _net(), _net()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    ctx = TrainContext({"main": OptimizerSlot(opt, model, scaler=scaler)}, CPU, grad_clip=0.05)
    _micro(ctx, 100 * _loss(model, x, y))
    _micro(_ctx(ref, lr=1.0, grad_clip=0.05), 100 * _loss(ref, x, y))
    for a, b in zip(_params(model), _params(ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_two_named_optimizers_step_independently() -> None:
    x, y = _data(8)
    g, d = _net(0), _net(1)
    d0 = _params(d)
    slots = {
        "g": OptimizerSlot(torch.optim.SGD(g.parameters(), lr=0.1), g),
        "d": OptimizerSlot(torch.optim.SGD(d.parameters(), lr=0.1), d),
    }
    ctx = TrainContext(slots, CPU)
    assert set(ctx.optimizers) == {"g", "d"}
    ctx.backward(_loss(g, x, y), "g")
    assert ctx.step("g") is True
    for a, b in zip(d0, _params(d), strict=True):
        assert torch.equal(a, b)


def test_no_sync_only_while_accumulating() -> None:
    calls = []

    class FakeDDP(nn.Module):
        @contextlib.contextmanager
        def no_sync(self) -> Iterator[None]:
            calls.append(1)
            yield

    ctx = _ctx(_net(), grad_accum=2)
    fake = FakeDDP()
    for _ in range(4):
        with ctx.no_sync(fake):
            pass
        ctx.micro_step += 1
    assert len(calls) == 2
    with ctx.no_sync(_net()):  # a plain module has no no_sync: nothing happens
        pass


def test_grad_accum_is_at_least_one() -> None:
    ctx = _ctx(_net(), grad_accum=0)
    assert ctx.grad_accum == 1 and not ctx.accumulating
