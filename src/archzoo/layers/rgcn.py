r"""The relational graph convolution (R-GCN) written out, with basis and block-diagonal weights.

Schlichtkrull et al. 2018, "Modeling Relational Data with Graph Convolutional Networks",
https://arxiv.org/abs/1703.06103. A knowledge graph has typed edges: each relation
:math:`r` gets its own weights, and a node averages its neighbours per relation:

.. math::
    h'_i = W_0 h_i + b + \sum_{r \in \mathcal R} \sum_{j \in \mathcal N_r(i)} \frac{1}{c_{i,r}} W_r h_j,
    \qquad c_{i,r} = |\mathcal N_r(i)|

With many relations the :math:`|\mathcal R|` full matrices overfit the rare ones, so the
paper ties them together in one of two ways:

* **basis decomposition**: :math:`W_r = \sum_{b=1}^{B} a_{rb} V_b`, :math:`B` shared
  bases and a coefficient per relation and basis;
* **block-diagonal decomposition**: :math:`W_r = \mathrm{diag}(Q_{1r}, \ldots, Q_{Br})`,
  each :math:`Q_{br}` of shape :math:`(F/B, C/B)`: the features are cut into :math:`B`
  groups that do not mix.

A **featureless** graph (the entities of AIFB and MUTAG have no attributes) gives every
node the one-hot input :math:`e_j`; then :math:`W_r e_j` is row :math:`j` of
:math:`W_r` and the layer is an embedding table per relation (``x=None``, with
``in_channels`` the number of nodes, as PyG's :class:`~torch_geometric.nn.RGCNConv` takes it).

:class:`RGCNLayer` holds its parameters under the names and in the layout of PyG's
``RGCNConv`` (``weight`` :math:`(B, F, C)` with ``comp`` :math:`(R, B)` for bases,
``weight`` :math:`(R, B, F/B, C/B)` for blocks, else ``weight`` :math:`(R, F, C)`;
``root`` :math:`(F, C)` is :math:`W_0`; ``bias`` :math:`(C,)`), so PyG's weights load
into it and the tests check that both give the same output.

Where PyG's ``RGCNConv`` (without pyg-lib's ``segment_matmul``) loops over the relations,
one masked message pass each, this layer does all relations at once: a message per edge,
gathered from a table indexed by (source, relation), scaled by :math:`1/c_{i,r}` and summed
into the targets with ``index_add_`` — no Python loop and no host sync in a step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from archzoo.layers.graph import _glorot


def relation_norm(
    edge_index: Tensor, edge_type: Tensor, num_nodes: int, num_relations: int, dtype: torch.dtype
) -> Tensor:
    r"""The weight :math:`1 / c_{i,r}` of each edge :math:`j \xrightarrow{r} i`: one over the number of
    edges of relation :math:`r` into its target :math:`i` (so each relation's messages are averaged).

    Shapes: ``edge_index`` :math:`(2, E)`, ``edge_type`` :math:`(E,)`; output :math:`(E,)`.
    """
    key = edge_index[1] * num_relations + edge_type  # (E,): the (target, relation) pair
    ones = torch.ones(key.numel(), dtype=dtype, device=key.device)
    count = torch.zeros(num_nodes * num_relations, dtype=dtype, device=key.device).index_add_(0, key, ones)
    return count.index_select(0, key).reciprocal()  # (E,): every pair that occurs counts >= 1


class RGCNLayer(nn.Module):
    r"""One relational graph convolution (Schlichtkrull et al. 2018, https://arxiv.org/abs/1703.06103), written out.

    .. math::
        h'_i = W_0 h_i + b + \sum_{r} \sum_{j \in \mathcal N_r(i)} \frac{1}{|\mathcal N_r(i)|} W_r h_j,
        \qquad W_r = \sum_b a_{rb} V_b \ \text{(bases)} \quad\text{or}\quad
        W_r = \mathrm{diag}(Q_{1r}, \ldots, Q_{Br}) \ \text{(blocks)}

    Args:
        in_channels: input width :math:`F`; for a featureless graph (``x=None``) the number of nodes.
        out_channels: output width :math:`C`.
        num_relations: number of relations :math:`|\mathcal R|` (edge types ``0 .. R-1``).
        num_bases: share :math:`B` basis matrices between the relations (default None: a full matrix each).
        num_blocks: block-diagonal weights of :math:`B` blocks; :math:`B` must divide ``in_channels``
            and ``out_channels``, and the input must be features, not node ids (default None).
        root_weight: add the self-connection :math:`W_0 h_i` (default True).
        bias: add a learned bias (default True).

    Shapes:
        ``x`` :math:`(N, F)` features, :math:`(N,)` node ids into the :math:`F` rows, or None
        (node :math:`j` is row :math:`j`: :math:`N = F`); ``edge_index`` :math:`(2, E)`;
        ``edge_type`` :math:`(E,)`; output :math:`(N, C)`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_relations: int,
        num_bases: int | None = None,
        num_blocks: int | None = None,
        root_weight: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_bases is not None and num_blocks is not None:
            raise ValueError("an R-GCN layer takes num_bases or num_blocks, not both")
        if num_blocks is not None and (in_channels % num_blocks or out_channels % num_blocks):
            raise ValueError(
                f"num_blocks={num_blocks} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.num_relations = in_channels, out_channels, num_relations
        self.num_bases, self.num_blocks = num_bases, num_blocks
        if num_bases is not None:
            self.weight = nn.Parameter(torch.empty(num_bases, in_channels, out_channels))  # V_b
            self.comp = nn.Parameter(torch.empty(num_relations, num_bases))  # a_rb
        elif num_blocks is not None:
            b = num_blocks
            self.weight = nn.Parameter(torch.empty(num_relations, b, in_channels // b, out_channels // b))  # Q_br
            self.register_parameter("comp", None)
        else:
            self.weight = nn.Parameter(torch.empty(num_relations, in_channels, out_channels))  # W_r
            self.register_parameter("comp", None)
        self.root = nn.Parameter(torch.empty(in_channels, out_channels)) if root_weight else None  # W_0
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        for p in (self.weight, self.comp, self.root):
            if p is not None:
                _glorot(p)

    def relation_weights(self) -> Tensor:
        r"""Every relation's weights: :math:`(R, F, C)`, or the blocks :math:`(R, B, F/B, C/B)`.

        With bases, :math:`W_r = \sum_b a_{rb} V_b` for all :math:`r` in one matrix product.
        """
        if self.comp is None:
            return self.weight
        b = self.num_bases
        return (self.comp @ self.weight.view(b, -1)).view(self.num_relations, self.in_channels, self.out_channels)

    def forward(self, x: Tensor | None, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        r_count, c = self.num_relations, self.out_channels
        src, dst = edge_index
        weight = self.relation_weights()
        if x is None or not torch.is_floating_point(x):
            if self.num_blocks is not None:
                raise ValueError("block-diagonal weights need node features, not node ids")
            n = self.in_channels if x is None else x.size(0)
            rows = src if x is None else x.index_select(0, src)  # (E,): the one-hot row of each source
            # W_r e_j is row j of W_r: gather it for each edge from the (R F, C) table.
            msg = weight.reshape(r_count * self.in_channels, c).index_select(0, edge_type * self.in_channels + rows)
        else:
            n = x.size(0)
            if self.num_blocks is not None:
                b = self.num_blocks
                xb = x.view(n, b, self.in_channels // b)  # (N, B, F/B)
                h = torch.einsum("nbf,rbfc->nrbc", xb, weight).reshape(n * r_count, c)  # (N R, C): Q_br per block
            else:
                h = torch.einsum("nf,rfc->nrc", x, weight).reshape(n * r_count, c)  # (N R, C): W_r h_j, every r
            msg = h.index_select(0, src * r_count + edge_type)  # (E, C): W_{r_e} h_{j_e}
        msg = msg * relation_norm(edge_index, edge_type, n, r_count, msg.dtype).unsqueeze(-1)  # / c_{i,r}
        out = msg.new_zeros(n, c).index_add_(0, dst, msg)  # (N, C): sum over relations and neighbours
        if self.root is not None:
            if x is None:
                out = out + self.root  # W_0 e_i is row i
            elif not torch.is_floating_point(x):
                out = out + self.root.index_select(0, x)
            else:
                out = out + x @ self.root  # (N, C)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        tie = f", num_bases={self.num_bases}" if self.num_bases else ""
        tie += f", num_blocks={self.num_blocks}" if self.num_blocks else ""
        return f"{self.in_channels}, {self.out_channels}, num_relations={self.num_relations}{tie}"
