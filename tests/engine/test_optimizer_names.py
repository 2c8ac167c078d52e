"""optim.name=momentum (SGD with momentum) beside the other six names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.config import OPTIMIZERS, OptimConfig, load_config
from archzoo.engine.optim import build_optimizer, param_groups
from archzoo.errors import UserError


def test_all_seven_names_are_accepted() -> None:
    assert set(OPTIMIZERS) == {"sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad", "nadam"}
    for name in OPTIMIZERS:
        cfg = load_config("digits-mlp", None, [f"optim.name={name}"])
        assert cfg.optim.name == name


def test_momentum_is_sgd_with_momentum() -> None:
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    groups, _ = param_groups(net, 0.0)
    opt = build_optimizer(OptimConfig(name="momentum", lr=0.1), groups)
    assert type(opt) is torch.optim.SGD
    assert all(g["momentum"] == 0.9 for g in opt.param_groups)
    # Two steps on a constant gradient g: v1 = g, v2 = 0.9 g + g, so w moves by lr * 2.9 g.
    w0 = net.weight.detach().clone()
    for _ in range(2):
        opt.zero_grad()
        net.weight.sum().backward()
        opt.step()
    torch.testing.assert_close(net.weight.detach(), w0 - 0.1 * 2.9 * torch.ones_like(w0))


def test_momentum_without_momentum_is_refused() -> None:
    with pytest.raises(UserError, match="optim.name=momentum needs optim.momentum > 0"):
        OptimConfig(name="momentum", momentum=0.0)
