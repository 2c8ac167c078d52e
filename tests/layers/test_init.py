"""Tests for archzoo.layers.init: the torchvision CNN initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from archzoo.layers.init import init_cnn_, uniform_linear_


def test_init_cnn_follows_torchvision() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 64, 3), nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(64, 500))
    nn.init.constant_(model[1].weight, 3.0)
    init_cnn_(model)
    conv, bn, _, fc = model
    assert abs(conv.weight.std().item() - math.sqrt(2 / (64 * 9))) < 0.01  # He normal, fan-out
    assert torch.equal(conv.bias, torch.zeros(64))
    assert torch.equal(bn.weight, torch.ones(64)) and torch.equal(bn.bias, torch.zeros(64))
    assert abs(fc.weight.std().item() - 0.01) < 0.001 and torch.equal(fc.bias, torch.zeros(500))


def test_linear_init_can_be_replaced_or_left() -> None:
    lin = nn.Linear(16, 100)
    before = lin.weight.clone()
    init_cnn_(nn.Sequential(lin), linear=None)
    assert torch.equal(lin.weight, before)
    init_cnn_(nn.Sequential(lin), linear=uniform_linear_)
    assert lin.weight.abs().max() <= 0.1 and torch.equal(lin.bias, torch.zeros(100))
