"""The regression task's metrics in original units, RMSE over the targets' standard deviation among them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from archzoo.tasks.regression import Regression


class Fixed(nn.Module):
    """Returns its input: the batch's x is the (standardised) prediction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_nrmse_is_rmse_over_the_targets_population_std() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(200, 1, generator=g)
    pred = y + 0.05 * torch.randn(200, 1, generator=g)
    task = Regression()
    task.setup(Fixed(), {"target_mean": 2.0, "target_std": 3.0}, torch.device("cpu"))
    for i in range(0, 200, 64):  # in batches, as the engine evaluates
        task.eval_step(Fixed(), (pred[i : i + 64], y[i : i + 64]), "test")
    m = task.compute("test")
    p, t = 2.0 + 3.0 * pred, 2.0 + 3.0 * y  # original units
    rmse = float((p - t).pow(2).mean().sqrt())
    assert m["test/rmse"] == pytest.approx(rmse, rel=1e-5)
    assert m["test/nrmse"] == pytest.approx(rmse / float(t.std(correction=0)), rel=1e-3)
    assert math.isclose(m["test/nrmse"], math.sqrt(1 - m["test/r2"]))
