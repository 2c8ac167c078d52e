r"""Graph tasks: node classification on one graph whose splits are node masks.

A batch is a PyG ``Data`` for the whole graph with a boolean ``mask`` :math:`(N,)`
naming the nodes of the split (:class:`~archzoo.data.splits.FullGraph`): the
model sees every node and edge (semi-supervised, Kipf & Welling 2017), and the
loss and metrics count the masked nodes only:

.. math::
    \mathcal{L} = -\frac{1}{|M|} \sum_{v \in M} \log \mathrm{softmax}(z_v)_{y_v}

Graph classification of PyG mini-batches is :class:`~archzoo.tasks.classification.Classification`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.registry import register_task
from archzoo.tasks.base import Task


class NodeClassification(Task):
    r"""Cross-entropy over the nodes of a mask; accuracy and macro-F1 over the same nodes.

    Metrics: ``loss``, ``acc`` (micro) and ``f1`` (macro), over the masked nodes.
    """

    monitor = "val/acc"
    mode = "max"

    def __init__(self) -> None:
        self.metrics: dict[str, Any] = {}

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        c = int(info["num_classes"])
        self.num_classes = c
        self.classes = info.get("classes")

        import torchmetrics  # imported here: it takes seconds, and listing or summaries need none of it

        def collection() -> torchmetrics.MetricCollection:
            m = {
                "acc": torchmetrics.classification.MulticlassAccuracy(c, average="micro"),
                "f1": torchmetrics.classification.MulticlassF1Score(c, average="macro"),
                "loss": torchmetrics.MeanMetric(),
            }
            return torchmetrics.MetricCollection(m).to(device)

        self.metrics = {s: collection() for s in ("train", "val", "test")}

    def count(self, batch: Any) -> Tensor:
        """The number of nodes in the split's mask (a tensor: no host sync)."""
        return batch.mask.sum()

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(batch)  # (N, C)
        mask = batch.mask.to(logits.dtype)  # (N,)
        # The mean over masked nodes as a weighted sum: the same value as indexing logits[mask],
        # without the host sync that boolean indexing costs.
        n = mask.sum().clamp_min(1.0)
        loss = (F.cross_entropy(logits, batch.y, reduction="none") * mask).sum() / n
        acc = ((logits.detach().argmax(1) == batch.y).to(mask.dtype) * mask).sum() / n
        return loss, {"acc": acc}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        mask = batch.mask
        logits = model(batch).float()[mask]  # (M, C)
        y = batch.y[mask]  # (M,)
        loss = F.cross_entropy(logits, y, reduction="sum")
        m = self.metrics[split]
        for name, metric in m.items():
            if name == "loss":
                metric.update(loss / max(y.numel(), 1), weight=y.numel())
            else:
                metric.update(logits, y)

    def compute(self, split: str) -> dict[str, float]:
        m = self.metrics[split]
        out = {f"{split}/{k}": float(v) for k, v in m.compute().items()}
        m.reset()
        return out

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        """Class probabilities of every node, :math:`(N, C)`."""
        return model(batch).float().softmax(-1)


@register_task("node_classification")
def node_classification() -> NodeClassification:
    return NodeClassification()
