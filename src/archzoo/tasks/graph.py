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

import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.registry import register_task
from archzoo.tasks.classification import Classification


class NodeClassification(Classification):
    r"""Cross-entropy over the nodes of a mask; accuracy and macro-F1 over the same nodes.

    Metrics: ``loss``, ``acc`` (micro) and ``f1`` (macro), over the masked nodes.
    """

    def __init__(self) -> None:
        super().__init__(top_k=0)  # accuracy, macro-F1 and loss: the metrics of Classification, on the mask

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
        self.update_metrics(split, logits, y)

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        """Class probabilities of every node, :math:`(N, C)`."""
        return model(batch).float().softmax(-1)


@register_task("node_classification")
def node_classification() -> NodeClassification:
    return NodeClassification()
