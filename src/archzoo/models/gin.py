r"""The graph isomorphism network (GIN) for classifying whole graphs (Xu et al. 2019).

Xu, Hu, Leskovec and Jegelka, "How Powerful are Graph Neural Networks?", ICLR 2019,
https://arxiv.org/abs/1810.00826. Each layer sums the neighbours' states, adds the
node's own scaled by :math:`1 + \epsilon`, and passes the sum through an MLP:

.. math::
    h^{(k)}_v = \mathrm{MLP}^{(k)}\Big((1 + \epsilon^{(k)})\, h^{(k-1)}_v + \sum_{u \in \mathcal N(v)} h^{(k-1)}_u\Big)

A sum is injective on multisets where a mean or a max is not, so with injective MLPs
GIN tells apart every pair of graphs the Weisfeiler-Lehman test tells apart. The graph
is read out from every layer, the input features included (:math:`h^{(0)}_v = x_v`), as
the paper does ("jumping knowledge"): the readout of layer :math:`k` gets a linear
head of its own and the logits are their sum,

.. math::
    \text{logits}_G = \sum_{k=0}^{K} W^{(k)}\, \mathrm{drop}\Big(\mathrm{READOUT}\big(\{h^{(k)}_v : v \in G\}\big)\Big) + b^{(k)}

which equals one linear map of the concatenation
:math:`[\mathrm{READOUT}(h^{(0)}); \ldots; \mathrm{READOUT}(h^{(K)})]` (that concatenation is
:meth:`GINGraphClassifier.forward_features`). The readout is a sum by default, the
paper's choice (:class:`~archzoo.layers.readout.Readout`).

Each MLP has two linear layers with batch normalisation, as in the authors' code:
``Linear → BatchNorm → ReLU → Linear → BatchNorm → ReLU`` (the last BatchNorm and ReLU
are applied after the MLP there; folding them into it is the same function).

The layers are PyG's :class:`~torch_geometric.nn.GINConv` (``impl="pyg"``, default) or
the written-out :class:`~archzoo.layers.gin.GINLayer` (``impl="scratch"``), which holds
its weights under the same names and gives the same outputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.readout import Readout
from archzoo.models._variant import variant
from archzoo.models.gnn import _check_impl, _ring
from archzoo.registry import register_model


def gin_mlp(in_dim: int, hidden: int) -> nn.Sequential:
    """The MLP of one GIN layer: ``Linear → BatchNorm → ReLU → Linear → BatchNorm → ReLU``."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
    )


class GINGraphClassifier(nn.Module):
    r"""GIN layers, a readout of every layer (the input included), and the sum of one linear head per readout.

    .. math::
        h^{(k)}_v = \mathrm{MLP}^{(k)}\Big((1 + \epsilon^{(k)}) h^{(k-1)}_v + \sum_{u \in \mathcal N(v)} h^{(k-1)}_u\Big),
        \qquad
        \text{logits}_G = \sum_{k=0}^{K} \mathrm{Linear}^{(k)}\Big(\mathrm{drop}\big(\mathrm{READOUT}_{v \in G}\, h^{(k)}_v\big)\Big)

    Args:
        num_node_features: input feature width :math:`F`.
        num_classes: number of classes :math:`C`.
        hidden: width of every GIN layer (default 32; the paper tries 16 and 32).
        layers: GIN layers :math:`K` (default 4; the paper's "5 layers" count the input as one).
        readout: the graph readout of each layer, one of
            :data:`~archzoo.layers.readout.READOUTS` (default ``sum``, the paper's).
        dropout: dropout on each readout before its head (default 0.5).
        train_eps: learn :math:`\epsilon` in each layer (GIN-:math:`\epsilon`); default False
            (GIN-0, :math:`\epsilon = 0`, the paper's better variant on most datasets).
        impl: ``pyg`` (``GINConv``, default) or ``scratch`` (:class:`~archzoo.layers.gin.GINLayer`).

    Shapes:
        input a PyG ``Batch`` with ``x`` :math:`(N, F)`, ``edge_index`` :math:`(2, E)`,
        ``batch`` :math:`(N,)` and ``num_graphs`` :math:`G`; output logits :math:`(G, C)`.
    """

    def __init__(
        self,
        num_node_features: int,
        num_classes: int,
        hidden: int = 32,
        layers: int = 4,
        readout: str = "sum",
        dropout: float = 0.5,
        train_eps: bool = False,
        impl: str = "pyg",
    ) -> None:
        super().__init__()
        _check_impl(impl)
        if layers < 1:
            raise UserError(f"model.args.layers must be at least 1, got {layers}.")
        if hidden < 1:
            raise UserError(f"model.args.hidden must be at least 1, got {hidden}.")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"model.args.dropout must be in [0, 1), got {dropout}.")
        if impl == "pyg":
            from torch_geometric.nn import GINConv as conv
        else:
            from archzoo.layers.gin import GINLayer as conv

        self.num_node_features = num_node_features
        self.dropout = dropout
        widths = [num_node_features] + [hidden] * layers
        self.convs = nn.ModuleList(
            conv(gin_mlp(a, b), train_eps=train_eps) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.readouts = nn.ModuleList(Readout(readout, w) for w in widths)  # one per layer: attention/set2set learn
        self.heads = nn.ModuleList(nn.Linear(r.out_dim, num_classes) for r in self.readouts)

    def layer_readouts(self, batch: Any) -> list[torch.Tensor]:
        """The readout of the input and of each GIN layer, :math:`K + 1` tensors :math:`(G, D_k)`."""
        g = int(batch.num_graphs)
        h = batch.x
        out = [self.readouts[0](h, batch.batch, g)]  # (G, F)
        for conv, readout in zip(self.convs, self.readouts[1:], strict=True):
            h = conv(h, batch.edge_index)  # (N, hidden)
            out.append(readout(h, batch.batch, g))  # (G, hidden)
        return out

    def forward_features(self, batch: Any) -> torch.Tensor:
        """The concatenated readouts of all layers, :math:`(G, \\sum_k D_k)`."""
        return torch.cat(self.layer_readouts(batch), 1)

    def forward(self, batch: Any) -> torch.Tensor:
        logits = None
        for head, r in zip(self.heads, self.layer_readouts(batch), strict=True):
            z = head(F.dropout(r, self.dropout, self.training))  # (G, C)
            logits = z if logits is None else logits + z
        assert logits is not None
        return logits

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A PyG ``Batch`` of ``batch_size`` ring graphs of 3, 4, 5, ... nodes."""
        from torch_geometric.data import Batch

        g = torch.Generator().manual_seed(0)
        return (Batch.from_data_list([_ring(3 + i, self.num_node_features, g) for i in range(batch_size)]),)


@register_model("gin_graph")
@variant(
    GINGraphClassifier,
    ("num_node_features", "num_classes", "hidden", "layers", "readout", "dropout", "train_eps", "impl"),
)
def gin_graph(**kwargs: Any) -> GINGraphClassifier:
    """Xu et al.'s GIN (sum aggregation, 2-layer MLPs with BatchNorm, a sum readout of every layer) for whole graphs."""
    return GINGraphClassifier(**kwargs)
