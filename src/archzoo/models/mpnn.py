r"""The edge-aware message passing network for whole graphs (molecules): embed, pass messages, read out, predict.

Gilmer et al. (2017, "Neural Message Passing for Quantum Chemistry",
https://arxiv.org/abs/1704.01212): the atoms' features are embedded, :math:`T` steps of
:class:`~archzoo.layers.mpnn.EdgeMessage` (a message MLP over :math:`[h_i \Vert h_j \Vert e_{ji}]`,
a GRU or residual update) mix each atom's state with its bonded neighbours', a readout
(:class:`~archzoo.layers.readout.Readout`: Set2Set by default, as in the paper) pools each
molecule's atoms into one vector, and an MLP predicts the property:

.. math::
    h_v^{(0)} = \mathrm{ReLU}(W x_v + b), \qquad
    h^{(t+1)} = \mathrm{EdgeMessage}_t(h^{(t)}, E), \qquad
    \hat y_g = \mathrm{MLP}\big(\mathrm{readout}(\{h_v^{(T)} : v \in V_g\})\big)

``torch_geometric`` is imported when the model is built, not when this module is imported.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.models._variant import variant
from archzoo.registry import register_model


class MPNNGraph(nn.Module):
    r"""Message passing network with edge features and a graph readout, for graph regression or classification.

    Args:
        num_node_features: input node feature width :math:`F`.
        num_edge_features: edge feature width :math:`F_e` (default 0: the graphs carry none).
        num_classes: classes for graph classification (logits out); None (default) for regression.
        num_targets: regression outputs when ``num_classes`` is None (default 1).
        hidden: node state width :math:`D` (default 64).
        steps: message passing steps :math:`T` (default 3).
        shared: one message layer used for all :math:`T` steps, as in Gilmer et al. (default True);
            False gives each step its own weights.
        update: ``gru`` (default) or ``residual`` node updates.
        aggr: ``sum`` (default) or ``mean`` over incoming messages.
        readout: ``mean``, ``max``, ``sum``, ``attention`` or ``set2set`` (default).
        readout_steps: Set2Set's processing steps (default 3; only with ``set2set``).
        head_hidden: the prediction MLP's hidden width (default :math:`D`).
        dropout: dropout before the head's last layer (default 0).

    Shapes:
        input a PyG ``Batch`` (or one ``Data``) with ``x`` :math:`(N, F)`, ``edge_index``
        :math:`(2, E)`, ``edge_attr`` :math:`(E, F_e)` and ``batch`` :math:`(N,)`; output
        :math:`(G, C)` logits or :math:`(G, \text{num\_targets})` values.
    """

    def __init__(
        self,
        num_node_features: int,
        num_edge_features: int = 0,
        num_classes: int | None = None,
        num_targets: int = 1,
        hidden: int = 64,
        steps: int = 3,
        shared: bool = True,
        update: str = "gru",
        aggr: str = "sum",
        readout: str = "set2set",
        readout_steps: int = 3,
        head_hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        from archzoo.layers.mpnn import EdgeMessage
        from archzoo.layers.readout import Readout

        if steps < 1:
            raise UserError(f"model.args.steps must be at least 1, got {steps}.")
        if num_classes is not None and num_classes < 2:
            raise UserError(f"model.args.num_classes must be at least 2, got {num_classes}.")
        if num_classes is not None and num_targets != 1:
            raise UserError("model.args.num_targets applies to regression only; this model has num_classes.")
        if readout != "set2set" and readout_steps != 3:
            raise UserError(f"model.args.readout_steps applies to the set2set readout only, not '{readout}'.")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"model.args.dropout must be in [0, 1), got {dropout}.")
        self.num_node_features, self.num_edge_features = num_node_features, num_edge_features
        self.steps, self.dropout = steps, dropout
        self.embed = nn.Linear(num_node_features, hidden)
        n_layers = 1 if shared else steps
        self.convs = nn.ModuleList(
            EdgeMessage(hidden, num_edge_features, aggr=aggr, update=update) for _ in range(n_layers)
        )
        self.readout = Readout(readout, hidden, steps=readout_steps)
        out = num_classes if num_classes is not None else num_targets
        head_hidden = head_hidden or hidden
        self.head = nn.Sequential(nn.Linear(self.readout.out_dim, head_hidden), nn.ReLU())
        self.out = nn.Linear(head_hidden, out)

    def node_states(self, data: Any) -> torch.Tensor:
        """The node states :math:`(N, D)` after the :math:`T` message passing steps."""
        h = F.relu(self.embed(data.x))  # (N, D)
        edge_attr = getattr(data, "edge_attr", None) if self.num_edge_features else None
        for t in range(self.steps):
            conv = self.convs[t % len(self.convs)]
            h = conv(h, data.edge_index, edge_attr)  # (N, D)
        return h

    def forward_features(self, data: Any) -> torch.Tensor:
        """The readout of each graph, :math:`(G, R)` (:math:`R = 2D` for Set2Set)."""
        h = self.node_states(data)
        batch = getattr(data, "batch", None)
        if batch is None:  # one graph, not a mini-batch
            batch = torch.zeros(h.size(0), dtype=torch.long, device=h.device)
        num_graphs = int(getattr(data, "num_graphs", 1) or 1)
        return self.readout(h, batch, num_graphs)  # (G, R)

    def forward(self, data: Any) -> torch.Tensor:
        g = self.head(self.forward_features(data))  # (G, head_hidden)
        return self.out(F.dropout(g, self.dropout, self.training))  # (G, out)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A PyG ``Batch`` of ``batch_size`` ring graphs of 3, 4, 5, ... nodes with random edge features."""
        from torch_geometric.data import Batch, Data

        g = torch.Generator().manual_seed(0)
        graphs = []
        for i in range(batch_size):
            n = 3 + i
            src = torch.arange(n)
            dst = (src + 1) % n
            edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # (2, 2n)
            d = Data(x=torch.randn(n, self.num_node_features, generator=g), edge_index=edge_index)
            if self.num_edge_features:
                d.edge_attr = torch.randn(2 * n, self.num_edge_features, generator=g)
            graphs.append(d)
        return (Batch.from_data_list(graphs),)


@register_model("mpnn_graph")
@variant(
    MPNNGraph,
    (
        "num_node_features", "num_edge_features", "num_classes", "num_targets", "hidden", "steps", "shared",
        "update", "aggr", "readout", "readout_steps", "head_hidden", "dropout",
    ),
)  # fmt: skip
def mpnn_graph(**kwargs: Any) -> MPNNGraph:
    """Gilmer et al.'s MPNN with edge-feature messages, GRU updates and a Set2Set readout, for molecules."""
    return MPNNGraph(**kwargs)
