r"""Graph neural networks: GCN, GAT, GraphSAGE and APPNP for the nodes of one graph; GCN for whole graphs.

One GCN layer (Kipf & Welling 2017, https://arxiv.org/abs/1609.02907) mixes each
node's features with its neighbours', normalised by degree, through the adjacency
with self-loops :math:`\hat A = A + I`:

.. math::
    H^{(l+1)} = \sigma\!\left(\hat D^{-1/2} \hat A \hat D^{-1/2} H^{(l)} W^{(l)}\right),
    \qquad \hat D_{ii} = \textstyle\sum_j \hat A_{ij}

The layers are PyG's (:class:`~torch_geometric.nn.GCNConv`, ``GATConv``, ``SAGEConv``,
``APPNP``: sparse message passing on the pure-torch scatter path, no compiled
extensions needed); the GCN and GAT can also run on the written-out layers of
:mod:`archzoo.layers.graph` (``impl="scratch"``), which give the same outputs.

* :class:`GCNNodeClassifier`, :class:`GATNodeClassifier`, :class:`SAGENodeClassifier`
  and :class:`APPNPNodeClassifier` classify the nodes of one graph (Cora, CiteSeer, the
  karate club): every node gets logits; the task picks the nodes of a split by mask.
* :class:`GCNGraphClassifier` stacks layers, averages the node states of each
  graph of a mini-batch (``global_mean_pool``) and classifies the average.

Input dropout on bag-of-words features (``sparse_input=True``): a citation graph's
features are 98.7% zeros (Cora: 49,216 non-zeros of 2708 × 1433), and dropout leaves a
zero a zero, so only the non-zeros need random numbers. :class:`InputDropout` keeps a
sparse CSR copy of ``x``, drops its stored values (:func:`~archzoo.layers.graph.sparse_dropout`)
and the first layer multiplies sparse × dense, as the original GCN code does.

``torch_geometric`` is imported when a model is built, not when this module is
imported (it takes seconds, and listing the models needs none of it).
"""

from __future__ import annotations

import warnings
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


IMPLS = ("pyg", "scratch")


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        from archzoo.errors import UserError

        raise UserError(f"model.args.impl must be pyg or scratch, got '{impl}'.")


class InputDropout(nn.Module):
    r"""Dropout on the input node features: dense, or over the non-zeros of a sparse copy.

    With ``sparse=True`` the dense :math:`(N, F)` input is turned into a sparse CSR
    matrix once (and again only when another tensor comes in) and its stored values are
    dropped and rescaled by :math:`1/(1-p)` (:func:`~archzoo.layers.graph.sparse_dropout`);
    the output stays sparse, so the next layer multiplies sparse × dense. The value is the
    same in expectation as dense dropout, and a zero feature is never touched.

    Args:
        p: the dropout probability.
        sparse: work on the non-zeros of a sparse copy (default False: ``F.dropout``).

    Shapes: input :math:`(N, F)` dense (or already sparse); output :math:`(N, F)`, sparse when ``sparse``.
    """

    def __init__(self, p: float, sparse: bool = False) -> None:
        super().__init__()
        self.p, self.sparse = p, sparse
        self._key: tuple[Any, ...] | None = None
        self._csr: torch.Tensor | None = None

    def as_sparse(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as sparse CSR, converted once per input tensor (the features of one graph do not change)."""
        if x.layout != torch.strided:
            return x
        key = (x.data_ptr(), x.device, tuple(x.shape), x.dtype, x._version)
        if self._key != key:
            with warnings.catch_warnings():  # torch calls its CSR support beta, once per process
                warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
                self._csr, self._key = x.to_sparse_csr(), key
        assert self._csr is not None
        return self._csr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from archzoo.layers.graph import sparse_dropout

        if self.sparse:
            return sparse_dropout(self.as_sparse(x), self.p, self.training)
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, sparse={self.sparse}"


class _NodeClassifier(nn.Module):
    """What the node classifiers share: dropout on the first layer's output, then ``conv2``; a ring graph as example.

    A subclass sets ``num_node_features``, ``dropout`` and ``conv2`` and defines ``forward_features``
    (the APPNP model overrides ``forward``).
    """

    num_node_features: int
    dropout: float

    def forward(self, data: Any) -> torch.Tensor:
        h = F.dropout(self.forward_features(data), self.dropout, self.training)
        return self.conv2(h, data.edge_index)  # (N, C)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """One ring graph of ``max(3, batch_size)`` nodes (a node task's batch is the whole graph)."""
        return (_ring(max(3, batch_size), self.num_node_features, torch.Generator().manual_seed(0)),)


class GCNNodeClassifier(_NodeClassifier):
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
        impl: ``pyg`` (``GCNConv``, default) or ``scratch`` (:class:`~archzoo.layers.graph.GCNLayer`).
        cached: normalise the adjacency once and reuse it (one fixed graph; default False).
        sparse_input: input dropout over the non-zeros of a sparse copy of ``x``, and a
            sparse × dense first layer (:class:`InputDropout`; default False).

    Shapes:
        input a PyG ``Data`` with ``x`` :math:`(N, F)` and ``edge_index`` :math:`(2, E)`;
        output logits :math:`(N, C)`.
    """

    def __init__(
        self,
        num_node_features: int,
        num_classes: int,
        hidden: int = 16,
        dropout: float = 0.5,
        impl: str = "pyg",
        cached: bool = False,
        sparse_input: bool = False,
    ) -> None:
        super().__init__()
        _check_impl(impl)
        if impl == "pyg":
            from torch_geometric.nn import GCNConv as conv
        else:
            from archzoo.layers.graph import GCNLayer as conv

        self.num_node_features = num_node_features
        self.dropout = dropout
        self.input_dropout = InputDropout(dropout, sparse_input)
        self.conv1 = conv(num_node_features, hidden, cached=cached)
        self.conv2 = conv(hidden, num_classes, cached=cached)

    def forward_features(self, data: Any) -> torch.Tensor:
        """The hidden node states :math:`(N, \\text{hidden})` after the first layer."""
        x = self.input_dropout(data.x)
        return F.relu(self.conv1(x, data.edge_index))


class GATNodeClassifier(_NodeClassifier):
    r"""The two-layer graph attention network of Veličković et al. (2018, https://arxiv.org/abs/1710.10903).

    A first layer of :math:`K` heads of width :math:`F'` whose outputs are concatenated,
    ELU, and an output layer whose heads are averaged (one head for Cora and CiteSeer,
    8 for PubMed in the paper):

    .. math::
        \alpha^k_{ij} = \mathrm{softmax}_{j \in \mathcal N(i) \cup \{i\}}
            \mathrm{LeakyReLU}_{0.2}\!\left(a^{k\top} [W^k h_i \Vert W^k h_j]\right), \qquad
        h'_i = \mathrm{ELU}\!\left(\big\Vert_{k=1}^{K} \sum_j \alpha^k_{ij} W^k h_j\right)

    Dropout (0.6 in the paper) acts on both layers' inputs and on the attention coefficients.

    Args:
        num_node_features: input feature width :math:`F`.
        num_classes: number of classes :math:`C`.
        hidden: width of each first-layer head :math:`F'` (default 8).
        heads: first-layer heads :math:`K` (default 8).
        out_heads: output-layer heads, averaged (default 1).
        dropout: dropout on the inputs of both layers and on the attention (default 0.6).
        impl: ``pyg`` (``GATConv``, default) or ``scratch`` (:class:`~archzoo.layers.graph.GATLayer`).
        sparse_input: input dropout over the non-zeros of a sparse copy of ``x`` (:class:`InputDropout`).
        feature_dropout: dropout, in both layers, on the transformed features :math:`W^k h_j` that
            the attention averages, as the authors' code does (at the input rate, 0.6); needs
            ``impl=scratch``, since PyG's ``GATConv`` has none (default 0).

    Shapes:
        input a PyG ``Data`` with ``x`` :math:`(N, F)` and ``edge_index`` :math:`(2, E)`;
        output logits :math:`(N, C)`.
    """

    def __init__(
        self,
        num_node_features: int,
        num_classes: int,
        hidden: int = 8,
        heads: int = 8,
        out_heads: int = 1,
        dropout: float = 0.6,
        impl: str = "pyg",
        sparse_input: bool = False,
        feature_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_impl(impl)
        if not 0.0 <= feature_dropout < 1.0:
            from archzoo.errors import UserError

            raise UserError(f"model.args.feature_dropout must be in [0, 1), got {feature_dropout}.")
        extra: dict[str, Any] = {}
        if impl == "pyg":
            from torch_geometric.nn import GATConv as conv

            if feature_dropout:
                from archzoo.errors import UserError

                raise UserError(
                    "model.args.feature_dropout needs model.args.impl=scratch: PyG's GATConv has no dropout "
                    "on the transformed features."
                )
        else:
            from archzoo.layers.graph import GATLayer as conv

            extra = {"feature_dropout": feature_dropout}
        self.num_node_features = num_node_features
        self.dropout = dropout
        self.input_dropout = InputDropout(dropout, sparse_input)
        self.conv1 = conv(num_node_features, hidden, heads=heads, dropout=dropout, **extra)
        self.conv2 = conv(hidden * heads, num_classes, heads=out_heads, concat=False, dropout=dropout, **extra)

    def forward_features(self, data: Any) -> torch.Tensor:
        """The concatenated first-layer heads after ELU, :math:`(N, K F')`."""
        return F.elu(self.conv1(self.input_dropout(data.x), data.edge_index))


class SAGENodeClassifier(_NodeClassifier):
    r"""Two GraphSAGE layers with mean aggregation (Hamilton et al. 2017, https://arxiv.org/abs/1706.02216).

    .. math::
        h'_i = W_1 h_i + W_2 \frac{1}{|\mathcal N(i)|} \sum_{j \in \mathcal N(i)} h_j + b

    (PyG's ``SAGEConv(aggr="mean")``: the node's own state and the mean of its
    neighbours', each through its own weights), full-batch on one graph, ReLU and dropout
    between the layers.

    ``SAGEConv`` averages the neighbours' raw features, then transforms: on Cora that
    gathers 1433 numbers per edge. The mean is linear, so with ``sparse_input=True`` the
    first layer transforms first, :math:`\frac{1}{|\mathcal N(i)|}\sum_j W_2 h_j`, which
    gathers ``hidden`` numbers per edge, multiplies the sparse features once, and gives the
    same output (an isolated node's mean is zero either way).

    Args:
        num_node_features: input feature width :math:`F`.
        num_classes: number of classes :math:`C`.
        hidden: hidden width (default 16).
        dropout: dropout on the input and hidden features (default 0.5).
        sparse_input: input dropout over the non-zeros of a sparse copy of ``x``
            (:class:`InputDropout`) and the transform-first first layer (default False).

    Shapes:
        input a PyG ``Data`` with ``x`` :math:`(N, F)` and ``edge_index`` :math:`(2, E)`;
        output logits :math:`(N, C)`.
    """

    def __init__(
        self,
        num_node_features: int,
        num_classes: int,
        hidden: int = 16,
        dropout: float = 0.5,
        sparse_input: bool = False,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import SAGEConv

        self.num_node_features = num_node_features
        self.dropout = dropout
        self.sparse_input = sparse_input
        self.input_dropout = InputDropout(dropout, sparse_input)
        self.conv1 = SAGEConv(num_node_features, hidden, aggr="mean")
        self.conv2 = SAGEConv(hidden, num_classes, aggr="mean")

    def _first(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``conv1`` with its neighbour transform before the mean (the same function, cheaper on wide input)."""
        conv = self.conv1
        if not self.sparse_input:
            return conv(x, edge_index)
        n = x.size(0)
        h = F.linear(x, conv.lin_l.weight)  # (N, hidden): W_2 h_j, sparse × dense
        src, dst = edge_index
        mean = conv.aggr_module(h.index_select(0, src), dst, dim_size=n)  # (N, hidden): over incoming edges
        return mean + conv.lin_l.bias + conv.lin_r(x)  # + b + W_1 h_i

    def forward_features(self, data: Any) -> torch.Tensor:
        """The hidden node states :math:`(N, \\text{hidden})` after the first layer."""
        return F.relu(self._first(self.input_dropout(data.x), data.edge_index))


class APPNPNodeClassifier(_NodeClassifier):
    r"""Predict then propagate (Klicpera et al. 2019, https://arxiv.org/abs/1810.05997).

    An MLP predicts from each node's own features, then :math:`K` steps of personalised
    PageRank spread the predictions over the graph, each step keeping a share
    :math:`\alpha` of the start (the teleport), with :math:`\tilde A = \hat D^{-1/2} \hat A \hat D^{-1/2}`:

    .. math::
        Z^{(0)} = H = \mathrm{MLP}(X), \qquad
        Z^{(k+1)} = (1 - \alpha)\, \tilde A Z^{(k)} + \alpha H, \qquad
        \text{logits} = Z^{(K)}

    Propagation has no weights, so its reach (:math:`K` hops) does not cost
    parameters or over-smoothing (:math:`Z^{(\infty)} = \alpha (I - (1-\alpha)\tilde A)^{-1} H`).

    Args:
        num_node_features: input feature width :math:`F`.
        num_classes: number of classes :math:`C`.
        hidden: the MLP's hidden width (default 64, as in the paper).
        dropout: dropout on the MLP's input and hidden features (default 0.5).
        K: propagation steps (default 10).
        alpha: teleport probability :math:`\alpha` (default 0.1).
        edge_dropout: dropout on the normalised edge weights in each propagation step
            (PyG's ``APPNP(dropout=...)``; the paper uses 0.5, default 0).
        cached: normalise the adjacency once (one fixed graph; default False).
        sparse_input: input dropout over the non-zeros of a sparse copy of ``x`` (:class:`InputDropout`).

    Shapes:
        input a PyG ``Data`` with ``x`` :math:`(N, F)` and ``edge_index`` :math:`(2, E)`;
        output logits :math:`(N, C)`.
    """

    def __init__(
        self,
        num_node_features: int,
        num_classes: int,
        hidden: int = 64,
        dropout: float = 0.5,
        K: int = 10,  # noqa: N803 (the paper's symbol)
        alpha: float = 0.1,
        edge_dropout: float = 0.0,
        cached: bool = False,
        sparse_input: bool = False,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import APPNP

        if K < 1 or not 0.0 < alpha <= 1.0:
            from archzoo.errors import UserError

            raise UserError(f"APPNP needs model.args.K >= 1 and 0 < alpha <= 1, got K={K}, alpha={alpha}.")
        self.num_node_features = num_node_features
        self.dropout = dropout
        self.input_dropout = InputDropout(dropout, sparse_input)
        self.lin1 = nn.Linear(num_node_features, hidden)
        self.lin2 = nn.Linear(hidden, num_classes)
        self.prop = APPNP(K, alpha, dropout=edge_dropout, cached=cached)

    def forward_features(self, data: Any) -> torch.Tensor:
        """The MLP's hidden states :math:`(N, \\text{hidden})`, before any propagation."""
        return F.relu(self.lin1(self.input_dropout(data.x)))

    def forward(self, data: Any) -> torch.Tensor:
        h = self.lin2(F.dropout(self.forward_features(data), self.dropout, self.training))  # (N, C): predict
        return self.prop(h, data.edge_index)  # (N, C): propagate


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


NODE_ARGS = ("num_node_features", "num_classes", "hidden", "dropout")


@register_model("gcn_node")
@variant(GCNNodeClassifier, (*NODE_ARGS, "impl", "cached", "sparse_input"))
def gcn_node(**kwargs: Any) -> GCNNodeClassifier:
    """Kipf & Welling's two-layer GCN for classifying the nodes of one graph (Cora, karate club)."""
    return GCNNodeClassifier(**kwargs)


@register_model("gat_node")
@variant(GATNodeClassifier, (*NODE_ARGS, "heads", "out_heads", "impl", "sparse_input", "feature_dropout"))
def gat_node(**kwargs: Any) -> GATNodeClassifier:
    """Veličković et al.'s two-layer GAT (8 heads of 8, ELU, dropout 0.6) for the nodes of one graph."""
    return GATNodeClassifier(**kwargs)


@register_model("sage_node")
@variant(SAGENodeClassifier, (*NODE_ARGS, "sparse_input"))
def sage_node(**kwargs: Any) -> SAGENodeClassifier:
    """Two full-batch GraphSAGE layers with mean aggregation for the nodes of one graph."""
    return SAGENodeClassifier(**kwargs)


@register_model("appnp_node")
@variant(APPNPNodeClassifier, (*NODE_ARGS, "K", "alpha", "edge_dropout", "cached", "sparse_input"))
def appnp_node(**kwargs: Any) -> APPNPNodeClassifier:
    """Klicpera et al.'s APPNP: a two-layer MLP, then K=10 steps of personalised PageRank (alpha 0.1)."""
    return APPNPNodeClassifier(**kwargs)


@register_model("gcn_graph")
@variant(GCNGraphClassifier, ("num_node_features", "num_classes", "hidden", "layers"))
def gcn_graph(**kwargs: Any) -> GCNGraphClassifier:
    """Stacked GCN layers with mean pooling for classifying whole graphs."""
    return GCNGraphClassifier(**kwargs)
