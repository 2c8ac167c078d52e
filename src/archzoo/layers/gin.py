r"""The graph isomorphism layer (GIN) written out from its equation with one scatter-sum.

Xu et al. 2019, "How Powerful are Graph Neural Networks?", https://arxiv.org/abs/1810.00826:

.. math::
    h'_i = \mathrm{MLP}\Big((1 + \epsilon)\, h_i + \sum_{j \in \mathcal N(i)} h_j\Big)

The sum (not a mean or a max) over the neighbours keeps the multiset of their states
apart, and :math:`(1 + \epsilon)` tells the node's own state from its neighbours' sum;
with an injective MLP the layer is as discriminative as the Weisfeiler-Lehman test.

:class:`GINLayer` is the lesson beside PyG's :class:`~torch_geometric.nn.GINConv`: the
messages :math:`h_j` are gathered along the edges with ``index_select`` and summed into
their targets with ``index_add_`` (row 0 of ``edge_index`` the source :math:`j`, row 1
the target :math:`i`, PyG's ``flow="source_to_target"``). It holds its weights under
``GINConv``'s names (``nn``, and ``eps`` as a parameter with ``train_eps`` or a buffer
without), so the state dict of one loads into the other; the tests check that the two
give the same outputs and gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GINLayer(nn.Module):
    r"""One GIN layer, :math:`h'_i = h_\Theta\big((1 + \epsilon) h_i + \sum_{j \in \mathcal N(i)} h_j\big)`.

    Args:
        nn: the network :math:`h_\Theta` applied to the aggregated states (an MLP).
        eps: the (initial) :math:`\epsilon` (default 0).
        train_eps: learn :math:`\epsilon` (default False: a fixed buffer, GIN-0 in the paper).

    Shapes:
        ``x`` :math:`(N, F)`, ``edge_index`` :math:`(2, E)`; output :math:`(N, F')`, the width of ``nn``'s output.
    """

    def __init__(self, nn: nn.Module, eps: float = 0.0, train_eps: bool = False) -> None:
        super().__init__()
        self.nn = nn
        self.initial_eps = eps
        if train_eps:
            self.eps = torch.nn.Parameter(torch.full((1,), float(eps)))
        else:
            self.register_buffer("eps", torch.full((1,), float(eps)))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        src, dst = edge_index
        agg = torch.zeros_like(x).index_add_(0, dst, x.index_select(0, src))  # (N, F): sum_j h_j into i
        return self.nn((1 + self.eps) * x + agg)  # (N, F')

    def extra_repr(self) -> str:
        return f"train_eps={isinstance(self.eps, torch.nn.Parameter)}"
