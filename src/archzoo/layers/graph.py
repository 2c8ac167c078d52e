r"""Graph layers written out from their equations with scatter operations: GCN, GAT and sparse input dropout.

These are the lesson; the models use PyG's :class:`~torch_geometric.nn.GCNConv` and
:class:`~torch_geometric.nn.GATConv` by default, and the tests show that the two agree
(same weights, same outputs and gradients). The weights are held under the names and in
the layout of PyG's layers (``weight`` :math:`(H C, F)` as in ``lin.weight``, ``att_src``
and ``att_dst`` :math:`(1, H, C)`, ``bias``), so PyG's weights load into them.

A graph is ``edge_index`` :math:`(2, E)`: row 0 the source :math:`j`, row 1 the target
:math:`i` of each message :math:`j \to i` (PyG's ``flow="source_to_target"``). Messages
are gathered with ``h[src]`` and summed into their targets with ``index_add_``: the
pure-torch path, no torch-scatter needed.

* :func:`gcn_norm_weights`: the edge weights of :math:`\hat D^{-1/2} (A + I) \hat D^{-1/2}`.
* :class:`GCNLayer`: :math:`H' = \hat D^{-1/2} \hat A \hat D^{-1/2} H W^\top + b` (Kipf & Welling 2017).
* :func:`segment_softmax`: a softmax over the entries that share an index (a node's incoming edges).
* :class:`GATLayer`: multi-head additive attention (Veličković et al. 2018).
* :func:`sparse_dropout`: dropout over the stored values of a sparse matrix only
  (the original GCN's input dropout on bag-of-words features).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _glorot(t: Tensor) -> None:
    """Glorot/Xavier uniform over the last two dimensions, as PyG's ``glorot``."""
    bound = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    with torch.no_grad():
        t.uniform_(-bound, bound)


def with_self_loops(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``edge_index`` with every existing self-loop removed and one loop ``(i, i)`` per node appended.

    Shapes: ``edge_index`` :math:`(2, E)` → :math:`(2, E' + N)`, where :math:`E'` counts the non-loop edges.
    """
    keep = edge_index[0] != edge_index[1]
    loops = torch.arange(num_nodes, device=edge_index.device).expand(2, num_nodes)  # (2, N)
    return torch.cat([edge_index[:, keep], loops], 1)


def gcn_norm_weights(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    r"""Self-loops and the symmetric normalisation of Kipf & Welling.

    .. math::
        \hat A = A + I, \qquad \hat D_{ii} = \sum_j \hat A_{ij}, \qquad
        w_{ji} = \hat D_{ii}^{-1/2}\, \hat A_{ij}\, \hat D_{jj}^{-1/2}

    The degree counts the edges into each node (the target row), as PyG's ``gcn_norm``.

    Returns:
        ``(edge_index, weight)``: :math:`(2, E' + N)` with the loops, and :math:`(E' + N,)`.
    """
    edge_index = with_self_loops(edge_index, num_nodes)
    src, dst = edge_index
    ones = torch.ones(dst.numel(), dtype=dtype, device=dst.device)
    deg = torch.zeros(num_nodes, dtype=dtype, device=dst.device).scatter_add_(0, dst, ones)  # (N,), >= 1
    d = deg.pow(-0.5)
    d.masked_fill_(torch.isinf(d), 0.0)
    return edge_index, d[src] * d[dst]  # (E' + N,)


class GCNLayer(nn.Module):
    r"""One graph convolution (Kipf & Welling 2017, https://arxiv.org/abs/1609.02907), written out.

    .. math::
        h'_i = b + \sum_{j \in \mathcal N(i) \cup \{i\}} \frac{1}{\sqrt{\hat d_i \hat d_j}}\, W h_j

    The transform :math:`W h_j` runs first (:math:`F \to C` shrinks what is gathered per
    edge); the messages :math:`w_{ji} W h_j` are summed into their targets with
    ``index_add_``. The input may be a sparse CSR or COO matrix (bag-of-words
    features): :func:`torch.nn.functional.linear` then multiplies sparse × dense.

    Args:
        in_channels: input width :math:`F`.
        out_channels: output width :math:`C`.
        cached: compute the normalised edges on the first call and reuse them (one fixed
            graph, as a transductive node task has; default False).
        bias: add a learned bias (default True).

    Shapes:
        ``x`` :math:`(N, F)`, dense or sparse; ``edge_index`` :math:`(2, E)`; output :math:`(N, C)`.
    """

    def __init__(self, in_channels: int, out_channels: int, cached: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.cached = in_channels, out_channels, cached
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))  # PyG's lin.weight layout
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._cache: tuple[Tensor, Tensor] | None = None
        _glorot(self.weight)

    def normalised(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The edges with self-loops and their weights, from the cache when ``cached``."""
        if self.cached and self._cache is not None:
            return self._cache
        out = gcn_norm_weights(edge_index, num_nodes, dtype)
        if self.cached:
            self._cache = out
        return out

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n = x.size(0)
        h = F.linear(x, self.weight)  # (N, C): sparse × dense when x is sparse
        ei, w = self.normalised(edge_index, n, h.dtype)
        src, dst = ei
        msg = h.index_select(0, src) * w.unsqueeze(-1)  # (E' + N, C): w_ji W h_j
        out = torch.zeros_like(h).index_add_(0, dst, msg)  # (N, C): sum over incoming edges
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, cached={self.cached}"


def segment_softmax(scores: Tensor, index: Tensor, num_segments: int) -> Tensor:
    r"""A softmax over the entries of ``scores`` that share ``index``, numerically stable.

    .. math::
        \alpha_e = \frac{\exp(s_e - m_{i})}{\sum_{e' : \mathrm{index}_{e'} = i} \exp(s_{e'} - m_i)},
        \qquad m_i = \max_{e : \mathrm{index}_e = i} s_e

    Subtracting each segment's maximum keeps ``exp`` from overflowing and does not change
    the result (it is detached: the softmax does not depend on it).

    Shapes:
        ``scores`` :math:`(E, \ldots)`, ``index`` :math:`(E,)` with values below ``num_segments``;
        output like ``scores``.
    """
    idx = index.view(-1, *([1] * (scores.dim() - 1))).expand_as(scores)  # (E, ...)
    shape = (num_segments, *scores.shape[1:])
    m = scores.new_full(shape, float("-inf")).scatter_reduce_(0, idx, scores.detach(), "amax", include_self=True)
    e = (scores - m.index_select(0, index)).exp()  # (E, ...)
    total = scores.new_zeros(shape).scatter_add_(0, idx, e)  # (num_segments, ...)
    return e / (total.index_select(0, index) + 1e-16)


class GATLayer(nn.Module):
    r"""One graph attention layer (Veličković et al. 2018, https://arxiv.org/abs/1710.10903), written out.

    Each head :math:`k` scores the edge :math:`j \to i` (self-loops included) and
    averages the transformed neighbours by the softmax of the scores over :math:`i`'s
    incoming edges:

    .. math::
        e^k_{ij} = \mathrm{LeakyReLU}_{0.2}\!\left(a_{\mathrm{dst}}^{k\top} W^k h_i + a_{\mathrm{src}}^{k\top} W^k h_j\right),
        \qquad \alpha^k_{ij} = \mathrm{softmax}_{j \in \mathcal N(i) \cup \{i\}}\, e^k_{ij}

    .. math::
        h'_i = b + \big\Vert_{k=1}^{H} \sum_j \mathrm{drop}(\alpha^k_{ij})\, W^k h_j
        \quad\text{(concat)}, \qquad
        h'_i = b + \frac1H \sum_{k=1}^{H} \sum_j \mathrm{drop}(\alpha^k_{ij})\, W^k h_j \quad\text{(mean)}

    Args:
        in_channels: input width :math:`F`.
        out_channels: width of each head :math:`C`.
        heads: attention heads :math:`H` (default 1).
        concat: concatenate the heads (output :math:`H C`), else average them (output :math:`C`).
        negative_slope: the LeakyReLU's slope (default 0.2).
        dropout: dropout on the attention coefficients in training (default 0).
        bias: add a learned bias (default True).
        feature_dropout: dropout on the transformed features :math:`W^k h_j` that the attention
            averages (not on those it scores), as the GAT authors' code does with its input
            dropout rate (default 0).

    Shapes:
        ``x`` :math:`(N, F)`, dense or sparse; ``edge_index`` :math:`(2, E)`;
        output :math:`(N, H C)` or :math:`(N, C)`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        bias: bool = True,
        feature_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.heads, self.concat = in_channels, out_channels, heads, concat
        self.negative_slope, self.dropout, self.feature_dropout = negative_slope, dropout, feature_dropout
        self.weight = nn.Parameter(torch.empty(heads * out_channels, in_channels))  # PyG's lin.weight
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.bias = nn.Parameter(torch.zeros(heads * out_channels if concat else out_channels)) if bias else None
        for p in (self.weight, self.att_src, self.att_dst):
            _glorot(p)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n, heads, c = x.size(0), self.heads, self.out_channels
        h = F.linear(x, self.weight).view(n, heads, c)  # (N, H, C)
        a_src = (h * self.att_src).sum(-1)  # (N, H): a_src^T W h_j
        a_dst = (h * self.att_dst).sum(-1)  # (N, H): a_dst^T W h_i
        src, dst = with_self_loops(edge_index, n)
        e = F.leaky_relu(a_src.index_select(0, src) + a_dst.index_select(0, dst), self.negative_slope)  # (E, H)
        alpha = segment_softmax(e, dst, n)  # (E, H): sums to 1 over each node's incoming edges
        alpha = F.dropout(alpha, self.dropout, self.training)
        values = F.dropout(h, self.feature_dropout, self.training) if self.feature_dropout else h  # (N, H, C)
        msg = values.index_select(0, src) * alpha.unsqueeze(-1)  # (E, H, C)
        out = torch.zeros_like(h).index_add_(0, dst, msg)  # (N, H, C)
        out = out.reshape(n, heads * c) if self.concat else out.mean(1)  # (N, H C) or (N, C)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        extra = f", feature_dropout={self.feature_dropout}" if self.feature_dropout else ""
        return f"{self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}{extra}"


def sparse_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    r"""Dropout on the stored (non-zero) values of a sparse COO or CSR matrix only.

    .. math::
        \tilde x_{uv} = \frac{m_{uv}}{1 - p}\, x_{uv}, \quad m_{uv} \sim \mathrm{Bernoulli}(1 - p),
        \quad \text{for the stored } (u, v)

    A zero stays zero under dropout, so only the :math:`\mathrm{nnz}` stored values need
    random numbers (Cora: 49,216 of 2708 × 1433 = 3.9 M entries), as the original GCN
    code does it (Kipf & Welling's ``sparse_dropout``); :math:`\mathbb E[\tilde x] = x`.
    The sparsity pattern is kept (dropped values are stored zeros), so the matrix's
    index arrays are reused, not rebuilt.

    Shapes: ``x`` :math:`(N, F)` sparse; output the same layout and pattern.
    """
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if x.layout == torch.sparse_csr:
        v = x.values()
        keep = torch.empty_like(v).bernoulli_(1.0 - p)
        return torch.sparse_csr_tensor(
            x.crow_indices(), x.col_indices(), v * keep / (1.0 - p), x.shape, check_invariants=False
        )
    if x.layout == torch.sparse_coo:
        x = x.coalesce()
        v = x.values()
        keep = torch.empty_like(v).bernoulli_(1.0 - p)
        return torch.sparse_coo_tensor(
            x.indices(), v * keep / (1.0 - p), x.shape, is_coalesced=True, check_invariants=False
        )
    raise ValueError(f"sparse_dropout takes a sparse COO or CSR tensor, not {x.layout}")
