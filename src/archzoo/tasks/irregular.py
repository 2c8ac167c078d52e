r"""Values of an irregularly sampled series at query times: interpolation and extrapolation.

Batches are ``(obs_t, obs_x, obs_m, q_t, q_y, q_kind)`` (:mod:`archzoo.data.irregular`); the model is
called as ``model(obs_t, obs_x, obs_m, q_t, q_valid)`` and returns :math:`(B, Q)` values. The loss is
the mean squared error over the valid queries of the batch, of both kinds:

.. math::
    \mathcal L = \frac{1}{|V|} \sum_{(b, q) \in V} (\hat y_{bq} - y_{bq})^2, \qquad V = \{(b, q) : \text{kind}_{bq} \neq 0\}

Metrics (on the data's scale: raw for sine, standardised by the training span for sunspots):
``mse`` over all queries, ``interp_mse`` over the held-out points inside the window and
``extrap_mse`` over the points after it, each a mean over query points.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import Task, collected

KINDS = {"interp": 1, "extrap": 2}


class IrregularRegression(Task):
    """Masked regression at query times (see the module docstring).

    Args:
        train_on: which queries the loss covers: ``all`` (default), ``interp`` or ``extrap``.

    Metrics: ``loss``, ``mse``, ``interp_mse``, ``extrap_mse``.
    """

    export_refusal = (
        "its model steps through irregular time gaps (an ODE solver or decays per gap) driven by the data's timestamps"
    )

    monitor = "val/mse"
    mode = "min"

    def __init__(self, train_on: str = "all") -> None:
        if train_on not in ("all", *KINDS):
            raise UserError(f"task.args.train_on must be all, interp or extrap, not '{train_on}'.")
        self.train_on = train_on

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        self.mean = float(info.get("target_mean", 0.0))
        self.std = float(info.get("target_std", 1.0))
        import torchmetrics

        def collection() -> torchmetrics.MetricCollection:
            names = ("loss", "mse", "interp_mse", "extrap_mse")
            return torchmetrics.MetricCollection({k: torchmetrics.MeanMetric() for k in names}).to(device)

        self.metrics = {s: collection() for s in ("train", "val", "test")}

    @staticmethod
    def _forward(model: nn.Module, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        obs_t, obs_x, obs_m, q_t, q_y, q_kind = batch
        pred = model(obs_t, obs_x, obs_m, q_t, q_kind > 0)  # (B, Q)
        return pred, q_y, q_kind

    def _mask(self, kind: Tensor) -> Tensor:
        return kind > 0 if self.train_on == "all" else kind == KINDS[self.train_on]

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        pred, y, kind = self._forward(model, batch)
        w = self._mask(kind).to(pred.dtype)
        return ((pred - y).square() * w).sum() / w.sum().clamp(min=1.0), {}

    def count(self, batch: Any) -> int | Tensor:
        """Valid query points of the loss."""
        return self._mask(batch[5]).sum()

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        pred, y, kind = self._forward(model, batch)
        err = (pred.float() - y).square()
        m = self.metrics[split]
        w = self._mask(kind).float()
        m["loss"].update((err * w).sum() / w.sum().clamp(min=1.0), weight=w.sum())
        for name, sel in (("mse", kind > 0), ("interp_mse", kind == 1), ("extrap_mse", kind == 2)):
            if sel.any():
                m[name].update(err[sel])

    def compute(self, split: str) -> dict[str, float]:
        return collected(self.metrics[split], split)

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        """Values at the query times in the series' units, :math:`(B, Q)` (padding included)."""
        pred, _, _ = self._forward(model, batch)
        return pred.float() * self.std + self.mean


@register_task("irregular_regression")
def irregular_regression(train_on: str = "all") -> IrregularRegression:
    return IrregularRegression(train_on=train_on)
