"""task.args.loss: the selectable losses of classification and regression against torch.nn.functional."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.registry import TASKS

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [-0.5, 1.5, 0.2]])
Y = torch.tensor([0, 2, 1])


class Fixed(nn.Module):
    """A model that answers its input: the logits or predictions are the batch's x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _task(**args: object) -> object:
    t = TASKS.create("classification", **args)
    t.setup(Fixed(), {"num_classes": 3}, torch.device("cpu"))
    return t


def test_classification_losses_equal_functional() -> None:
    want = {
        "ce": F.cross_entropy(LOGITS, Y),
        "nll": F.nll_loss(F.log_softmax(LOGITS, -1), Y),
        "hinge": F.multi_margin_loss(LOGITS, Y),
    }
    for name, value in want.items():
        loss, _ = _task(loss=name).loss(Fixed(), (LOGITS, Y))
        torch.testing.assert_close(loss, value, msg=name)
    # Known values: the uniform row costs log 3 under ce; hinge of row 2 is (1 + 1) / 3.
    row = _task(loss="hinge").objective(LOGITS[1:2], Y[1:2])
    assert float(row) == pytest.approx(2 / 3)
    assert float(_task().objective(LOGITS[1:2], Y[1:2])) == pytest.approx(torch.log(torch.tensor(3.0)).item())
    m = _task(loss="hinge", margin=2.0).objective(LOGITS, Y)
    torch.testing.assert_close(m, F.multi_margin_loss(LOGITS, Y, margin=2.0))


def test_validation_loss_follows_the_chosen_loss() -> None:
    t = _task(loss="hinge")
    t.eval_step(Fixed(), (LOGITS, Y), "val")
    got = t.compute("val")["val/loss"]
    assert got == pytest.approx(float(F.multi_margin_loss(LOGITS, Y)), rel=1e-6)
    t = _task(label_smoothing=0.1)  # the default: validation stays the unsmoothed cross-entropy
    t.eval_step(Fixed(), (LOGITS, Y), "val")
    assert t.compute("val")["val/loss"] == pytest.approx(float(F.cross_entropy(LOGITS, Y)), rel=1e-6)


def test_default_is_unchanged_cross_entropy_with_smoothing() -> None:
    loss, _ = _task(label_smoothing=0.2).loss(Fixed(), (LOGITS, Y))
    torch.testing.assert_close(loss, F.cross_entropy(LOGITS, Y, label_smoothing=0.2))


def test_regression_losses_equal_functional() -> None:
    pred = torch.tensor([0.5, -2.0, 3.0])
    y = torch.tensor([0.0, 0.0, 1.0])
    for name, fn in {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}.items():
        t = TASKS.create("regression", loss=name)
        loss, _ = t.loss(Fixed(), (pred, y))
        torch.testing.assert_close(loss, fn(pred, y), msg=name)
    # Huber with delta 1 on errors 0.5, 2, 2: (0.125 + 1.5 + 1.5) / 3.
    t = TASKS.create("regression", loss="huber")
    assert float(t.loss(Fixed(), (pred, y))[0]) == pytest.approx((0.125 + 1.5 + 1.5) / 3)


def test_unknown_and_inapplicable_options_are_refused() -> None:
    with pytest.raises(UserError, match="task.args.loss must be one of ce, nll, hinge, got 'mse'"):
        TASKS.create("classification", loss="mse")
    with pytest.raises(UserError, match="label_smoothing applies to loss=ce only"):
        TASKS.create("classification", loss="hinge", label_smoothing=0.1)
    with pytest.raises(UserError, match="margin applies to loss=hinge only"):
        TASKS.create("classification", margin=2.0)
    with pytest.raises(UserError, match="margin must be positive"):
        TASKS.create("classification", loss="hinge", margin=0.0)
    with pytest.raises(UserError, match="task.args.loss must be one of mse, l1, huber"):
        TASKS.create("regression", loss="ce")
