"""The irregular_regression task: masked loss and the interpolation/extrapolation means."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.tasks.irregular import IrregularRegression


class Zero(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, obs_t, obs_x, obs_m, q_t, q_valid):  # noqa: ANN001, ANN201
        return q_t * 0 + self.w


def _batch() -> tuple[torch.Tensor, ...]:
    obs = torch.zeros(2, 3)
    q_t = torch.tensor([[0.1, 0.2, 1.1], [0.3, 1.1, 0.0]])
    q_y = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0]])
    q_kind = torch.tensor([[1, 1, 2], [1, 2, 0]])
    return obs, obs, torch.ones(2, 3), q_t, q_y, q_kind


def test_padding_is_out_of_the_loss_and_each_kind_has_its_mean() -> None:
    task = IrregularRegression()
    task.setup(Zero(), {}, torch.device("cpu"))
    loss, _ = task.loss(Zero(), _batch())
    assert float(loss.detach()) == pytest.approx((1 + 4 + 9 + 16 + 25) / 5)
    assert int(task.count(_batch())) == 5
    task.eval_step(Zero(), _batch(), "val")
    m = task.compute("val")
    assert m["val/interp_mse"] == pytest.approx((1 + 4 + 16) / 3)
    assert m["val/extrap_mse"] == pytest.approx((9 + 25) / 2)
    assert m["val/mse"] == pytest.approx(11.0)


def test_training_on_one_kind() -> None:
    task = IrregularRegression(train_on="extrap")
    loss, _ = task.loss(Zero(), _batch())
    assert float(loss.detach()) == pytest.approx(17.0)
    with pytest.raises(UserError, match="train_on"):
        IrregularRegression(train_on="both")
