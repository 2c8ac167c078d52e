r"""Graph convolutional networks (Kipf & Welling 2017, https://arxiv.org/abs/1609.02907).

One GCN layer mixes each node's features with its neighbours', normalised by
degree, through the adjacency with self-loops :math:`\hat A = A + I`:

.. math::
    H^{(l+1)} = \sigma\!\left(\hat D^{-1/2} \hat A \hat D^{-1/2} H^{(l)} W^{(l)}\right),
    \qquad \hat D_{ii} = \textstyle\sum_j \hat A_{ij}

The layers are PyG's :class:`~torch_geometric.nn.GCNConv` (sparse message
passing; the pure-torch scatter path, no compiled extensions needed).

* :class:`GCNNodeClassifier` is the paper's two-layer model for one graph:
  every node gets logits; the task picks the nodes of a split by mask.
* :class:`GCNGraphClassifier` stacks layers, averages the node states of each
  graph of a mini-batch (``global_mean_pool``) and classifies the average.

``torch_geometric`` is imported when a model is built, not when this module is
imported (it takes seconds, and listing the models needs none of it).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.models._variant import variant
from archzoo.registry import register_model


def _ring(num_nodes: int, num_features: int, generator: torch.Generator) -> Any:
    """A cycle graph with random node features, as a PyG ``Data``."""
    from torch_geometric.data import Data

    src = torch.arange(num_nodes)
    dst = (src + 1) % num_nodes
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # (2, 2N), both directions
    return Data(x=torch.randn(num_nodes, num_features, generator=generator), edge_index=edge_index)


class GCNNodeClassifier(nn.Module):
    r"""The two-layer GCN of Kipf & Welling for node classification on one graph.

    .. math::
        Z = \hat D^{-1/2} \hat A \hat D^{-1/2}\,
        \mathrm{drop}\!\left(\mathrm{ReLU}\!\left(\hat D^{-1/2} \hat A \hat D^{-1/2}\, \mathrm{drop}(X)\, W^{(0)}\right)\right)
        W^{(1)}

    Args:
        num_node_features: input feature width :math:`F`.
        num_classes: number of classes :math:`C`.
        hidden: hidden width (default 16, as in the paper).
        dropout: dropout on the input and hidden features (default 0.5).

    Shapes:
        input a PyG ``Data`` with ``x`` :math:`(N, F)` and ``edge_index`` :math:`(2, E)`;
        output logits :math:`(N, C)`.
    """

    def __init__(self, num_node_features: int, num_classes: int, hidden: int = 16, dropout: float = 0.5) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.num_node_features = num_node_features
        self.dropout = dropout
        self.conv1 = GCNConv(num_node_features, hidden)
        self.conv2 = GCNConv(hidden, num_classes)

    def forward_features(self, data: Any) -> torch.Tensor:
        """The hidden node states :math:`(N, \\text{hidden})` after the first layer."""
        x = F.dropout(data.x, self.dropout, self.training)
        return F.relu(self.conv1(x, data.edge_index))

    def forward(self, data: Any) -> torch.Tensor:
        h = F.dropout(self.forward_features(data), self.dropout, self.training)
        return self.conv2(h, data.edge_index)  # (N, C)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """One ring graph of ``max(3, batch_size)`` nodes (a node task's batch is the whole graph)."""
        return (_ring(max(3, batch_size), self.num_node_features, torch.Generator().manual_seed(0)),)


class GCNGraphClassifier(nn.Module):
    r"""Stacked GCN layers, a mean over each graph's nodes, and a linear classifier.

    .. math::
        H^{(l+1)} = \mathrm{ReLU}\!\left(\hat D^{-1/2} \hat A \hat D^{-1/2} H^{(l)} W^{(l)}\right), \qquad
        \text{logits}_g = W \frac{1}{|V_g|} \sum_{v \in V_g} H^{(L)}_v + b

    Args:
        num_node_features: input feature width :math:`F`.
        num_classes: number of classes :math:`C`.
        hidden: width of every GCN layer (default 32).
        layers: number of GCN layers (default 2).

    Shapes:
        input a PyG ``Batch`` with ``x`` :math:`(N, F)`, ``edge_index`` :math:`(2, E)`,
        ``batch`` :math:`(N,)` and ``num_graphs`` :math:`G`; output logits :math:`(G, C)`.
    """

    def __init__(self, num_node_features: int, num_classes: int, hidden: int = 32, layers: int = 2) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        if layers < 1:
            from archzoo.errors import UserError

            raise UserError(f"model.args.layers must be at least 1, got {layers}.")
        self.num_node_features = num_node_features
        widths = [num_node_features] + [hidden] * layers
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, batch: Any) -> torch.Tensor:
        """The mean node state of each graph, :math:`(G, \\text{hidden})`."""
        from torch_geometric.nn import global_mean_pool

        h = batch.x
        for conv in self.convs:
            h = F.relu(conv(h, batch.edge_index))  # (N, hidden)
        return global_mean_pool(h, batch.batch, size=batch.num_graphs)  # (G, hidden)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.head(self.forward_features(batch))  # (G, C)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A PyG ``Batch`` of ``batch_size`` ring graphs of 3, 4, 5, ... nodes."""
        from torch_geometric.data import Batch

        g = torch.Generator().manual_seed(0)
        return (Batch.from_data_list([_ring(3 + i, self.num_node_features, g) for i in range(batch_size)]),)


# ----------------------------------------------------------------------------- registered variants


@register_model("gcn_node")
@variant(GCNNodeClassifier, ("num_node_features", "num_classes", "hidden", "dropout"))
def gcn_node(**kwargs: Any) -> GCNNodeClassifier:
    """Kipf & Welling's two-layer GCN for classifying the nodes of one graph (Cora, karate club)."""
    return GCNNodeClassifier(**kwargs)


@register_model("gcn_graph")
@variant(GCNGraphClassifier, ("num_node_features", "num_classes", "hidden", "layers"))
def gcn_graph(**kwargs: Any) -> GCNGraphClassifier:
    """Stacked GCN layers with mean pooling for classifying whole graphs."""
    return GCNGraphClassifier(**kwargs)
