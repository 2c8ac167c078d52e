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
from archzoo.tasks.base import ExportInput
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

    # ----------------------------------------------------------------- archzoo export

    def export_inputs(
        self, model: nn.Module, batch: Any, size: int | None = None, vary: bool = False
    ) -> list[ExportInput]:
        """Node features ``x`` :math:`(N, F)` and ``edge_index`` :math:`(2, E)`; with ``size``, the
        subgraph induced by the first ``size`` nodes (the edges among them)."""
        x, edge_index = batch.x, batch.edge_index
        if size is not None:
            keep = (edge_index < size).all(0)  # (E,): both ends among the kept nodes
            x, edge_index = x[:size], edge_index[:, keep]
        return [ExportInput("x", x, {0: "nodes"}), ExportInput("edge_index", edge_index, {1: "edges"})]

    def export_forward(self, model: nn.Module, *inputs: Tensor) -> Tensor:
        """The logits of every node :math:`(N, C)`."""
        from torch_geometric.data import Data

        x, edge_index = inputs
        return model(Data(x=x, edge_index=edge_index))

    def export_reference(self, model: nn.Module, *inputs: Tensor) -> Tensor:
        return self.export_forward(model, *inputs)

    def export_size(self, batch: Any) -> int:
        return int(batch.num_nodes)

    def export_sizes(self, available: int, size: int | None) -> tuple[int, int]:
        """The whole graph (or ``size`` nodes) exported, checked on the subgraph of half as many nodes."""
        exported = available if size is None else size
        return exported, max(2, exported // 2)


@register_task("node_classification")
def node_classification() -> NodeClassification:
    return NodeClassification()
