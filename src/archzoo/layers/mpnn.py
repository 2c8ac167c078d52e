r"""Edge-aware message passing: a message MLP over both ends of an edge and its features, then a GRU or residual update.

The message passing neural network of Gilmer et al. (2017, "Neural Message Passing for
Quantum Chemistry", https://arxiv.org/abs/1704.01212) in the form used here: each edge
:math:`j \to i` with features :math:`e_{ji}` sends

.. math::
    m_{ji} = \mathrm{MLP}\big([h_i \,\Vert\, h_j \,\Vert\, e_{ji}]\big), \qquad
    m_i = \bigoplus_{j \in \mathcal N(i)} m_{ji}

(:math:`\bigoplus` a sum, or a mean), and the node state is updated by a GRU cell
(Gilmer et al.'s choice) or a residual step:

.. math::
    h_i' = \mathrm{GRU}(m_i, h_i) \qquad\text{or}\qquad h_i' = h_i + m_i

A node without incoming edges receives :math:`m_i = 0`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from archzoo.errors import UserError

UPDATES = ("gru", "residual")
AGGRS = ("sum", "mean")


class EdgeMessage(MessagePassing):
    r"""One step of edge-aware message passing (PyG ``MessagePassing``, flow source to target).

    Args:
        dim: node state width :math:`D` (kept by the update).
        edge_dim: edge feature width :math:`F_e`; 0 for a graph without edge features
            (the message then sees :math:`[h_i \Vert h_j]`).
        hidden: the message MLP's hidden width (default :math:`D`).
        aggr: ``sum`` (default) or ``mean`` over the incoming messages.
        update: ``gru`` (``nn.GRUCell``, default) or ``residual``.

    Shapes:
        ``x`` :math:`(N, D)`, ``edge_index`` :math:`(2, E)`, ``edge_attr`` :math:`(E, F_e)`
        (or None when ``edge_dim`` is 0); output :math:`(N, D)`.
    """

    def __init__(self, dim: int, edge_dim: int = 0, hidden: int | None = None, aggr: str = "sum", update: str = "gru"):
        if aggr not in AGGRS:
            raise UserError(f"The message aggregation must be one of {', '.join(AGGRS)}, got '{aggr}'.")
        if update not in UPDATES:
            raise UserError(f"The node update must be one of {', '.join(UPDATES)}, got '{update}'.")
        if dim < 1 or edge_dim < 0:
            raise UserError(f"EdgeMessage needs dim >= 1 and edge_dim >= 0, got {dim} and {edge_dim}.")
        super().__init__(aggr="add" if aggr == "sum" else "mean")
        hidden = hidden or dim
        self.dim, self.edge_dim, self.update_kind = dim, edge_dim, update
        self.mlp = nn.Sequential(nn.Linear(2 * dim + edge_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.gru = nn.GRUCell(dim, dim) if update == "gru" else None

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None) -> Tensor:
        if self.edge_dim and (edge_attr is None or edge_attr.size(-1) != self.edge_dim):
            got = None if edge_attr is None else tuple(edge_attr.shape)
            raise UserError(f"EdgeMessage expects edge_attr of width {self.edge_dim}, got {got}.")
        m = self.propagate(edge_index, x=x, edge_attr=edge_attr if self.edge_dim else None)  # (N, D)
        if self.gru is not None:
            return self.gru(m, x)  # h' = GRU(m, h)
        return x + m  # h' = h + m

    def message(self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor | None) -> Tensor:
        parts = [x_i, x_j] if edge_attr is None else [x_i, x_j, edge_attr.to(x_i.dtype)]
        return self.mlp(torch.cat(parts, -1))  # (E, D)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, edge_dim={self.edge_dim}, aggr={self.aggr}, update={self.update_kind}"
