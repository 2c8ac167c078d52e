r"""R-GCN for classifying the entities of a knowledge graph (AIFB, MUTAG).

Schlichtkrull et al. 2018, "Modeling Relational Data with Graph Convolutional Networks",
https://arxiv.org/abs/1703.06103. The entities have no features: each node starts from
its one-hot identity, so the first layer is a table of embeddings per relation, and the
next layers mix the neighbours of each relation type with their own weights:

.. math::
    h^{(l+1)}_i = \sigma\Big(W^{(l)}_0 h^{(l)}_i + \sum_{r \in \mathcal R} \sum_{j \in \mathcal N_r(i)}
        \frac{1}{|\mathcal N_r(i)|} W^{(l)}_r h^{(l)}_j\Big), \qquad h^{(0)}_i = e_i

The relations include each predicate's inverse (an edge :math:`s \to o` of relation
:math:`2p` and :math:`o \to s` of :math:`2p+1`), so information flows both ways along a
triple. The paper's entity classifier: two layers, 16 hidden units, ReLU between them,
a softmax over the last, basis decomposition with 30 bases on MUTAG and full weights on AIFB.

The layers are PyG's :class:`~torch_geometric.nn.RGCNConv` (``impl="pyg"``, which on the
pure-torch path loops over the relations, one masked message pass each),
:class:`~torch_geometric.nn.FastRGCNConv` (``impl="pyg_fast"``: one pass, the messages
gathered per edge), or the written-out :class:`~archzoo.layers.rgcn.RGCNLayer`
(``impl="scratch"``: one pass, no loop); all three give the same function.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.models._variant import variant
from archzoo.registry import register_model

IMPLS = ("pyg", "pyg_fast", "scratch")


def _conv_class(impl: str) -> type[nn.Module]:
    if impl == "pyg":
        from torch_geometric.nn import RGCNConv

        return RGCNConv
    if impl == "pyg_fast":
        from torch_geometric.nn import FastRGCNConv

        return FastRGCNConv
    if impl == "scratch":
        from archzoo.layers.rgcn import RGCNLayer

        return RGCNLayer
    raise UserError(f"model.args.impl must be one of {', '.join(IMPLS)}, got '{impl}'.")


class RGCNNodeClassifier(nn.Module):
    r"""Stacked R-GCN layers over a featureless multi-relational graph, classifying its nodes.

    .. math::
        H^{(1)} = \mathrm{ReLU}\big(\mathrm{RGCN}_1(I_N)\big), \quad
        H^{(l+1)} = \mathrm{ReLU}\big(\mathrm{RGCN}_{l+1}(\mathrm{drop}(H^{(l)}))\big), \quad
        Z = \mathrm{RGCN}_L(\mathrm{drop}(H^{(L-1)}))

    Args:
        num_nodes: nodes of the graph :math:`N` (the first layer has a row per node).
        num_relations: relation types :math:`|\mathcal R|`, inverses included.
        num_classes: number of classes :math:`C`.
        hidden: width of the hidden layers (default 16, as in the paper).
        layers: R-GCN layers :math:`L \ge 1` (default 2).
        num_bases: basis matrices shared by the relations in every layer; 0 gives each
            relation its full matrix (default 0; the paper: 0 on AIFB, 30 on MUTAG).
        num_blocks: block-diagonal weights of this many blocks in the layers after the
            first (the first layer's input is one-hot node ids, which have no blocks);
            it must divide ``hidden`` and ``num_classes`` (default 0: none).
        dropout: dropout on the input of every layer after the first (default 0, as in the paper).
        impl: ``pyg`` (``RGCNConv``, default), ``pyg_fast`` (``FastRGCNConv``) or
            ``scratch`` (:class:`~archzoo.layers.rgcn.RGCNLayer`).

    Shapes:
        input a PyG ``Data`` with ``edge_index`` :math:`(2, E)`, ``edge_type`` :math:`(E,)`
        and ``num_nodes`` :math:`N` (no ``x``); output logits :math:`(N, C)`.
    """

    def __init__(
        self,
        num_nodes: int,
        num_relations: int,
        num_classes: int,
        hidden: int = 16,
        layers: int = 2,
        num_bases: int = 0,
        num_blocks: int = 0,
        dropout: float = 0.0,
        impl: str = "pyg",
    ) -> None:
        super().__init__()
        conv = _conv_class(impl)
        if layers < 1:
            raise UserError(f"model.args.layers must be at least 1, got {layers}.")
        if num_nodes < 1 or num_relations < 1:
            raise UserError(f"R-GCN needs a graph with nodes and relations, got {num_nodes} and {num_relations}.")
        if num_bases < 0 or num_blocks < 0:
            raise UserError(f"model.args.num_bases and num_blocks must be >= 0, got {num_bases} and {num_blocks}.")
        if num_bases and num_blocks:
            raise UserError("R-GCN takes model.args.num_bases or num_blocks, not both.")
        if num_blocks and layers == 1:
            raise UserError("model.args.num_blocks acts on the layers after the first: set layers >= 2.")
        if num_blocks and (hidden % num_blocks or num_classes % num_blocks):
            raise UserError(
                f"model.args.num_blocks={num_blocks} must divide hidden={hidden} and num_classes={num_classes}."
            )
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"model.args.dropout must be in [0, 1), got {dropout}.")
        if dropout and layers == 1:
            raise UserError("model.args.dropout acts between layers: set layers >= 2.")
        self.num_nodes, self.num_relations, self.dropout, self.impl = num_nodes, num_relations, dropout, impl
        widths = [num_nodes] + [hidden] * (layers - 1) + [num_classes]
        self.convs = nn.ModuleList()
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            tie = {"num_bases": num_bases or None}
            if k > 0 and num_blocks:
                tie = {"num_blocks": num_blocks}
            self.convs.append(conv(a, b, num_relations, **tie))

    def _hidden(self, data: Any) -> torch.Tensor:
        h = None  # the first layer's input is every node's one-hot identity
        for k, conv in enumerate(self.convs[:-1]):
            if k > 0:
                h = F.dropout(h, self.dropout, self.training)
            h = F.relu(conv(h, data.edge_index, data.edge_type))  # (N, hidden)
        return h

    def forward_features(self, data: Any) -> torch.Tensor:
        """The node states :math:`(N, \\text{hidden})` before the last layer (with one layer: the logits)."""
        h = self._hidden(data)
        return self.forward(data) if h is None else h

    def forward(self, data: Any) -> torch.Tensor:
        h = self._hidden(data)
        if h is not None:
            h = F.dropout(h, self.dropout, self.training)
        return self.convs[-1](h, data.edge_index, data.edge_type)  # (N, C)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A ring over the model's ``num_nodes`` nodes, both directions, relation types taken in turn
        (a featureless graph's model is tied to its nodes, so ``batch_size`` does not change it)."""
        from torch_geometric.data import Data

        n, r = self.num_nodes, self.num_relations
        src = torch.arange(n)
        dst = (src + 1) % n
        edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])  # (2, 2N)
        edge_type = torch.arange(2 * n) % r  # (2N,)
        return (Data(edge_index=edge_index, edge_type=edge_type, num_nodes=n),)


@register_model("rgcn_node")
@variant(
    RGCNNodeClassifier,
    ("num_nodes", "num_relations", "num_classes", "hidden", "layers", "num_bases", "num_blocks", "dropout", "impl"),
)
def rgcn_node(**kwargs: Any) -> RGCNNodeClassifier:
    """Schlichtkrull et al.'s R-GCN entity classifier: two featureless layers of 16, basis or block weights."""
    return RGCNNodeClassifier(**kwargs)
