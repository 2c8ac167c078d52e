"""Regression: MSE, L1 or Huber loss on standardised targets; RMSE, MAE, R² and RMSE / std in original units."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import ExportInput, Task, collected
from archzoo.tasks.classification import unpack

LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.smooth_l1_loss}


class Regression(Task):
    r"""Regression of ``(x, y)`` batches with ``y`` of shape ``(B,)`` or ``(B, D)``, or of PyG graph batches.

    A PyG ``Batch`` (graph regression: molecules) is handed to the model whole, its graph-level
    targets are ``batch.y`` :math:`(G,)` or :math:`(G, D)`, and it counts its graphs, not its nodes.

    If the dataset standardised its targets (``info["target_mean"]``, ``info["target_std"]``),
    metrics are reported in the original units: :math:`\hat y = \mu + \sigma f(x)`.

    Args:
        loss: mse, l1 or huber (default mse).

    Metrics: ``loss`` (on the standardised scale), ``rmse``, ``mae``, ``r2`` and ``nrmse``, the RMSE over
    the standard deviation of the split's targets, :math:`\mathrm{RMSE} / \sigma_y = \sqrt{1 - R^2}`
    (:math:`\sigma_y` with divisor :math:`n`; 1 is the error of predicting the split's mean).
    """

    monitor = "val/rmse"
    mode = "min"

    #: Regression exports the model's output on the standardised scale (``archzoo export``).
    export_refusal = None

    def export_inputs(
        self, model: nn.Module, batch: Any, size: int | None = None, vary: bool = False
    ) -> list[ExportInput]:
        """A tuple batch's ``x``, the first dimension dynamic; graph mini-batches are refused."""
        if isinstance(getattr(batch, "y", None), Tensor):
            raise UserError(
                f"{type(model).__name__} reads PyG mini-batches of graphs, whose graph count comes from the "
                "data (global pooling over a batch vector), and archzoo export traces tensors of fixed meaning only."
            )
        return super().export_inputs(model, batch, size, vary)

    def __init__(self, loss: str = "mse") -> None:
        if loss not in LOSSES:
            raise UserError(f"task.args.loss must be one of {', '.join(LOSSES)}, got '{loss}'.")
        self.loss_fn = LOSSES[loss]

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        self.mean = float(info.get("target_mean", 0.0))
        self.std = float(info.get("target_std", 1.0))

        import torchmetrics  # imported here: it takes seconds, and listing or summaries need none of it

        def collection() -> torchmetrics.MetricCollection:
            return torchmetrics.MetricCollection(
                {
                    "rmse": torchmetrics.MeanSquaredError(squared=False),
                    "mae": torchmetrics.MeanAbsoluteError(),
                    "r2": torchmetrics.R2Score(),
                    "loss": torchmetrics.MeanMetric(),
                }
            ).to(device)

        self.metrics = {s: collection() for s in ("train", "val", "test")}

    def _pred(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        out = model(x)
        return out.reshape(y.shape) if out.numel() == y.numel() else out

    def count(self, batch: Any) -> int:
        """The number of examples: samples of a tuple, graphs of a PyG batch."""
        if isinstance(getattr(batch, "y", None), Tensor):
            return int(getattr(batch, "num_graphs", batch.y.shape[0]))
        return super().count(batch)

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = unpack(batch)
        return self.loss_fn(self._pred(model, x, y), y), {}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        x, y = unpack(batch)
        pred = self._pred(model, x, y).float()
        m = self.metrics[split]
        m["loss"].update(self.loss_fn(pred, y), weight=y.shape[0])
        p, t = pred * self.std + self.mean, y * self.std + self.mean
        for k in ("rmse", "mae", "r2"):
            m[k].update(p.reshape(-1), t.reshape(-1))

    def compute(self, split: str) -> dict[str, float]:
        out = collected(self.metrics[split], split)
        r2 = out[f"{split}/r2"]
        # RMSE / std(y) = sqrt(SSE / SST) = sqrt(1 - R²), from the reduced R² (so the same under DDP).
        out[f"{split}/nrmse"] = math.sqrt(max(0.0, 1.0 - r2)) if math.isfinite(r2) else math.nan
        return out

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return model(x).float() * self.std + self.mean


@register_task("regression")
def regression(loss: str = "mse") -> Regression:
    return Regression(loss=loss)
