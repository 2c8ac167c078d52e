"""Tests for archzoo.engine.optim: parameter groups, optimizers and schedules by name."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from archzoo.config import OptimConfig
from archzoo.engine.optim import WarmupCosine, build_optimizer, build_scheduler, param_groups
from archzoo.errors import UserError


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3),  # 0: weight (4-D) decays, bias does not
        nn.BatchNorm2d(2),  # 1: weight and bias: no decay
        nn.Flatten(),
        nn.Linear(2, 3),  # 3: weight decays
        nn.LayerNorm(3),  # 4: no decay
    )


def _ids(ps: list[torch.Tensor]) -> set[int]:
    return {id(p) for p in ps}


def test_param_groups_split_weights_from_biases_and_norms() -> None:
    net = _net()
    groups, decayed = param_groups(net, 0.05)
    assert len(groups) == 2
    decay_g, no_decay_g = groups
    assert decay_g["weight_decay"] == 0.05 and no_decay_g["weight_decay"] == 0.0
    expect_decay = {id(net[0].weight), id(net[3].weight)}
    expect_no = {id(p) for p in (net[0].bias, net[1].weight, net[1].bias, net[3].bias, net[4].weight, net[4].bias)}
    assert _ids(decay_g["params"]) == expect_decay
    assert _ids(no_decay_g["params"]) == expect_no
    assert _ids(decayed) == expect_decay
    # every trainable parameter is in exactly one group
    assert len(decay_g["params"]) + len(no_decay_g["params"]) == len(list(net.parameters()))


def test_param_groups_puts_one_dim_params_in_no_decay() -> None:
    class WithVector(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(4))  # 1-D, not called bias
            self.pos = nn.Parameter(torch.zeros(3, 4))  # 2-D: decays
            self.frozen = nn.Parameter(torch.zeros(4, 4), requires_grad=False)

    m = WithVector()
    groups, decayed = param_groups(m, 0.1)
    decay_g, no_decay_g = groups
    # A frozen parameter stays in its group (so unfreezing needs no new optimizer) ...
    assert _ids(decay_g["params"]) == {id(m.pos), id(m.frozen)}
    assert _ids(no_decay_g["params"]) == {id(m.scale)}
    # ... and the optimizer skips it while its grad is None, weight decay included.
    opt = build_optimizer(OptimConfig(name="adamw", lr=0.1), groups)
    m.frozen.data.fill_(1.0)
    (m.pos.sum() + m.scale.sum()).backward()
    opt.step()
    assert torch.equal(m.frozen, torch.ones(4, 4))
    assert not torch.equal(m.pos, torch.zeros(3, 4))


def test_param_groups_split_head_and_backbone_lrs() -> None:
    net = _net()
    head = net[3]  # the Linear layer: a weight (decays) and a bias (does not)
    groups, decayed = param_groups(net, 0.1, head=head, backbone_lr=1e-4)
    opt = build_optimizer(OptimConfig(name="adamw", lr=1e-2), groups)
    got = [(g["lr"], g["weight_decay"], _ids(g["params"])) for g in opt.param_groups]
    head_ids, all_ids = _ids(list(head.parameters())), _ids(list(net.parameters()))
    assert [(lr, wd) for lr, wd, _ in got] == [(1e-2, 0.1), (1e-2, 0.0), (1e-4, 0.1), (1e-4, 0.0)]
    assert got[0][2] | got[1][2] == head_ids
    assert got[2][2] | got[3][2] == all_ids - head_ids
    assert _ids(decayed) == got[0][2] | got[2][2]
    # Without backbone_lr the head changes nothing: one lr, two groups.
    assert len(param_groups(net, 0.1, head=head)[0]) == 2


def test_param_groups_count_shared_parameters_once() -> None:
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    groups, _ = param_groups(net, 0.1)
    assert sum(len(g["params"]) for g in groups) == 2


def test_param_groups_without_weights_have_only_no_decay_group() -> None:
    groups, decayed = param_groups(nn.LayerNorm(4), 0.1)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
    assert decayed == []


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("adagrad", torch.optim.Adagrad),
        ("nadam", torch.optim.NAdam),
    ],
)
def test_each_optimizer_name_builds_its_class(name: str, cls: type) -> None:
    cfg = OptimConfig(name=name, lr=0.0123, momentum=0.7, betas=[0.8, 0.95], eps=1e-6, weight_decay=0.01)
    groups, _ = param_groups(_net(), cfg.weight_decay)
    opt = build_optimizer(cfg, groups)
    assert type(opt) is cls
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    for g in opt.param_groups:
        assert g["lr"] == 0.0123
        if name in ("sgd", "rmsprop"):
            assert g["momentum"] == 0.7
        if name in ("adam", "adamw", "nadam"):
            assert tuple(g["betas"]) == (0.8, 0.95)
        if name != "sgd":
            assert g["eps"] == 1e-6


def test_sgd_nesterov() -> None:
    cfg = OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True)
    opt = build_optimizer(cfg, param_groups(_net(), 0.0)[0])
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)


def test_precedence_slot_over_optim_over_task_default() -> None:
    task_default = {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}
    # Nothing set: the task's default.
    c = OptimConfig().for_slot("generator", task_default)
    assert (c.name, c.lr, c.betas) == ("adam", 2e-4, [0.5, 0.999])
    # optim.* wins over the task's default, for every slot.
    c = OptimConfig(lr=1e-3).for_slot("generator", task_default)
    assert (c.name, c.lr) == ("adam", 1e-3)
    # optim.slots.<slot>.* wins over optim.*, for that slot alone.
    cfg = OptimConfig(lr=1e-3, slots={"generator": {"lr": 5e-5, "name": "sgd"}})
    g, d = cfg.for_slot("generator", task_default), cfg.for_slot("discriminator", task_default)
    assert (g.name, g.lr, d.name, d.lr) == ("sgd", 5e-5, "adam", 1e-3)
    opt = build_optimizer(g, param_groups(_net(), 0.0)[0])
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 5e-5
    # No task default and nothing set: adamw at 1e-3.
    c = OptimConfig().for_slot("main")
    assert (c.name, c.lr, c.betas) == ("adamw", 1e-3, [0.9, 0.999])


def test_slot_settings_are_validated() -> None:
    with pytest.raises(UserError, match=r"Unknown config key 'optim.slots.generator.momentm'"):
        OptimConfig(slots={"generator": {"momentm": 0.5}})
    with pytest.raises(UserError, match="optim.name must be one of"):
        OptimConfig(slots={"generator": {"name": "lion"}})
    with pytest.raises(UserError, match="optim.lr must be positive"):
        OptimConfig(slots={"generator": {"lr": -1}})


def test_no_trainable_parameters() -> None:
    with pytest.raises(UserError, match="no trainable parameters"):
        build_optimizer(OptimConfig(), [])


def _opt(lr: float = 0.1, name: str = "sgd") -> torch.optim.Optimizer:
    return build_optimizer(OptimConfig(name=name, lr=lr), param_groups(_net(), 0.0)[0])


@pytest.mark.parametrize(
    ("sched", "cls", "interval"),
    [
        ("step", torch.optim.lr_scheduler.StepLR, "epoch"),
        ("exponential", torch.optim.lr_scheduler.ExponentialLR, "epoch"),
        ("cosine", torch.optim.lr_scheduler.CosineAnnealingLR, "step"),
        ("plateau", torch.optim.lr_scheduler.ReduceLROnPlateau, "plateau"),
        ("onecycle", torch.optim.lr_scheduler.OneCycleLR, "step"),
        ("warmup_cosine", torch.optim.lr_scheduler.LambdaLR, "step"),
    ],
)
def test_each_scheduler_name(sched: str, cls: type, interval: str) -> None:
    cfg = OptimConfig(name="sgd", lr=0.1, scheduler=sched, warmup_epochs=1)
    s, iv = build_scheduler(cfg, _opt(), steps_per_epoch=5, total_steps=15)
    assert type(s) is cls
    assert iv == interval


def test_no_scheduler() -> None:
    s, iv = build_scheduler(OptimConfig(scheduler="none"), _opt(), 5, 15)
    assert s is None and iv == "step"


def test_step_scheduler_uses_step_size_and_gamma() -> None:
    cfg = OptimConfig(name="sgd", lr=1.0, scheduler="step", step_size=2, gamma=0.5)
    opt = _opt(1.0)
    s, _ = build_scheduler(cfg, opt, 5, 50)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    assert lrs == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])


def test_cosine_runs_over_all_steps_to_min_lr() -> None:
    cfg = OptimConfig(name="sgd", lr=1.0, scheduler="cosine", min_lr=0.1)
    opt = _opt(1.0)
    s, _ = build_scheduler(cfg, opt, steps_per_epoch=4, total_steps=8)
    for _ in range(4):
        opt.step()
        s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.55)  # half way
    for _ in range(4):
        opt.step()
        s.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_warmup_cosine_factor_values() -> None:
    f = WarmupCosine(warmup=4, total=12, floor=0.1)
    # linear warmup: 1/4, 2/4, 3/4, 1
    assert [f(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f(4) == pytest.approx(1.0)  # top of the cosine
    assert f(8) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert f(12) == pytest.approx(0.1)  # the floor at the end
    assert f(100) == pytest.approx(0.1)  # and it stays there
    # monotone after warmup
    vals = [f(s) for s in range(3, 13)]
    assert all(a >= b for a, b in zip(vals, vals[1:], strict=False))


def test_warmup_cosine_without_warmup() -> None:
    f = WarmupCosine(warmup=0, total=10, floor=0.0)
    assert f(0) == pytest.approx(1.0)
    assert f(5) == pytest.approx(0.5)
    assert f(10) == pytest.approx(0.0)


def test_warmup_cosine_schedule_through_optimizer() -> None:
    cfg = OptimConfig(name="sgd", lr=0.2, scheduler="warmup_cosine", warmup_epochs=0.5, min_lr=0.02)
    opt = _opt(0.2)
    s, _ = build_scheduler(cfg, opt, steps_per_epoch=4, total_steps=12)  # warmup 2 steps, total 12
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[1] == pytest.approx(0.2)
    assert lrs[2] == pytest.approx(0.2)
    assert lrs[7] == pytest.approx(0.02 + 0.18 * 0.5)  # (7 - 2) / (12 - 2) = half way
    assert lrs[12] == pytest.approx(0.02)
    assert max(lrs) == pytest.approx(0.2)


def test_onecycle_peaks_near_pct_start() -> None:
    cfg = OptimConfig(name="adamw", lr=0.01, scheduler="onecycle", pct_start=0.25)
    opt = _opt(0.01, "adamw")
    s, _ = build_scheduler(cfg, opt, steps_per_epoch=10, total_steps=40)  # 40 steps
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    peak = max(range(40), key=lambda i: lrs[i])
    assert abs(peak - 0.25 * 40) <= 1
    assert lrs[peak] == pytest.approx(0.01)
    assert lrs[0] == pytest.approx(0.01 / 25)
    assert lrs[-1] < 1e-5
    # both parameter groups follow the same schedule (their base lr is the same)
    assert opt.param_groups[0]["lr"] == pytest.approx(opt.param_groups[1]["lr"])


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamw", "adagrad", "nadam"])
def test_onecycle_builds_for_every_optimizer(name: str) -> None:
    # A valid config must give a schedule or a one-sentence UserError, never a raw exception.
    cfg = OptimConfig(name=name, lr=0.01, scheduler="onecycle")
    opt = _opt(0.01, name)
    s, iv = build_scheduler(cfg, opt, steps_per_epoch=4, total_steps=8)
    assert isinstance(s, torch.optim.lr_scheduler.OneCycleLR) and iv == "step"


@pytest.mark.parametrize("total", [2, 3, 4, 5, 8])
def test_onecycle_runs_on_a_few_steps(total: int) -> None:
    # 4 steps at pct_start 0.25 put the end of torch's warm-up phase at step 0 (a zero-length phase).
    cfg = OptimConfig(name="adamw", lr=0.01, scheduler="onecycle", pct_start=0.25)
    opt = _opt(0.01, "adamw")
    s, _ = build_scheduler(cfg, opt, steps_per_epoch=total, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    assert all(0 < lr <= 0.01 + 1e-12 for lr in lrs)
    assert lrs[-1] < lrs[0] or total <= 3  # it anneals below the start by the last step


def test_plateau_decays_after_patience() -> None:
    cfg = OptimConfig(name="sgd", lr=1.0, scheduler="plateau", gamma=0.5, plateau_patience=1)
    opt = _opt(1.0)
    s, _ = build_scheduler(cfg, opt, 5, 50)
    for v in (1.0, 1.0, 1.0):
        s.step(v)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_adamw_decays_weights_but_not_biases() -> None:
    lin = nn.Linear(3, 2)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    cfg = OptimConfig(name="adamw", lr=0.1, weight_decay=0.5)
    opt = build_optimizer(cfg, param_groups(lin, cfg.weight_decay)[0])
    for p in lin.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    # decoupled decay: w <- w (1 - lr * wd); with zero gradient Adam's own update is zero
    torch.testing.assert_close(lin.weight.detach(), w0 * (1 - 0.1 * 0.5))
    assert lin.weight.detach().norm() < w0.norm()
    assert torch.equal(lin.bias.detach(), b0)


def test_warmup_in_steps() -> None:
    cfg = OptimConfig(name="adamw", lr=1.0, scheduler="warmup_cosine", warmup_steps=4)
    opt = _opt(lr=1.0)
    s, _ = build_scheduler(cfg, opt, steps_per_epoch=100, total_steps=20)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # 4 warm-up steps, whatever the epoch length
