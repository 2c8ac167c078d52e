"""The written-out GCN and GAT layers against PyG's GCNConv and GATConv; the sparse input dropout."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GATConv, GCNConv

from archzoo.layers.graph import GATLayer, GCNLayer, segment_softmax, sparse_dropout

ATOL = 1e-5


def _random_graph(n: int = 12, e: int = 30, isolated: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(n, 7)`` and ``e`` distinct directed edges among the first ``n - isolated`` nodes, no loops."""
    g = torch.Generator().manual_seed(seed)
    m = n - isolated
    pairs = torch.cartesian_prod(torch.arange(m), torch.arange(m))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pick = pairs[torch.randperm(len(pairs), generator=g)[:e]]  # (e, 2), duplicate-free
    x = torch.randn(n, 7, generator=g)
    return x, pick.T.contiguous()


def _grads(module: torch.nn.Module, x: torch.Tensor, edge_index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output, d/dx and each parameter's gradient by name (PyG's ``lin.weight`` is ours ``weight``)."""
    x = x.clone().requires_grad_(True)
    module.zero_grad()
    out = module(x, edge_index)
    w = torch.linspace(-1, 1, out.numel()).view_as(out)  # a loss that weights every output differently
    (out * w).sum().backward()
    grads = {name.replace("lin.", ""): p.grad for name, p in module.named_parameters()}
    return {"out": out.detach(), "x": x.grad, **grads}


def _assert_same(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert ours.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(ours[k], ref[k], atol=ATOL, rtol=0, msg=k)


def test_the_random_graph_has_isolated_nodes_and_no_duplicates() -> None:
    x, ei = _random_graph()
    assert ei.shape == (2, 30) and len({tuple(p) for p in ei.T.tolist()}) == 30
    assert set(range(9, 12)).isdisjoint(ei.flatten().tolist())


@pytest.mark.parametrize("cached", [False, True])
def test_gcn_layer_equals_gcnconv_forward_and_backward(cached: bool) -> None:
    x, ei = _random_graph()
    torch.manual_seed(0)
    ref = GCNConv(7, 5, cached=cached)
    torch.nn.init.normal_(ref.bias)  # PyG starts the bias at zero; a non-zero one is checked too
    ours = GCNLayer(7, 5, cached=cached)
    with torch.no_grad():
        ours.weight.copy_(ref.lin.weight)
        ours.bias.copy_(ref.bias)
    for _ in range(2):  # the second call reads the cache when cached
        _assert_same(_grads(ours, x, ei), _grads(ref, x, ei))
    assert (ours._cache is not None) == cached


def test_gcn_layer_takes_sparse_features() -> None:
    x, ei = _random_graph()
    x = x * (x > 0.8)  # mostly zeros
    layer = GCNLayer(7, 5)
    torch.testing.assert_close(layer(x.to_sparse_csr(), ei), layer(x, ei), atol=ATOL, rtol=0)
    torch.testing.assert_close(layer(x.to_sparse(), ei), layer(x, ei), atol=ATOL, rtol=0)


@pytest.mark.parametrize(("heads", "concat"), [(1, True), (3, True), (4, False), (1, False)])
def test_gat_layer_equals_gatconv_forward_and_backward(heads: int, concat: bool) -> None:
    x, ei = _random_graph()
    torch.manual_seed(0)
    ref = GATConv(7, 4, heads=heads, concat=concat)
    torch.nn.init.normal_(ref.bias)
    ours = GATLayer(7, 4, heads=heads, concat=concat)
    with torch.no_grad():
        ours.weight.copy_(ref.lin.weight)
        ours.att_src.copy_(ref.att_src)
        ours.att_dst.copy_(ref.att_dst)
        ours.bias.copy_(ref.bias)
    ref_out = _grads(ref, x, ei)
    assert ref_out["out"].shape == (12, 4 * heads if concat else 4)
    _assert_same(_grads(ours, x, ei), ref_out)


def test_gat_attention_dropout_only_in_training() -> None:
    x, ei = _random_graph()
    layer = GATLayer(7, 4, heads=2, dropout=0.5)
    layer.eval()
    torch.testing.assert_close(layer(x, ei), layer(x, ei))
    layer.train()
    assert not torch.equal(layer(x, ei), layer(x, ei))


def test_gat_feature_dropout_drops_the_averaged_features_not_the_scored_ones() -> None:
    # The GAT authors' attn_head: scores from W h, then dropout on W h before the attention averages it.
    import torch.nn.functional as F

    from archzoo.layers.graph import with_self_loops

    x, ei = _random_graph()
    layer = GATLayer(7, 4, heads=2, feature_dropout=0.5)
    plain = GATLayer(7, 4, heads=2)
    plain.load_state_dict(layer.state_dict())
    layer.eval()
    torch.testing.assert_close(layer(x, ei), plain.eval()(x, ei))  # eval: no dropout
    layer.train()
    torch.manual_seed(3)
    out = layer(x, ei)
    torch.manual_seed(3)
    n = x.size(0)
    h = F.linear(x, layer.weight).view(n, 2, 4)
    values = F.dropout(h, 0.5, True)  # the same draw as the layer's
    src, dst = with_self_loops(ei, n)
    e = F.leaky_relu((h * layer.att_src).sum(-1)[src] + (h * layer.att_dst).sum(-1)[dst], 0.2)
    alpha = segment_softmax(e, dst, n)
    want = torch.zeros_like(h).index_add_(0, dst, values[src] * alpha.unsqueeze(-1)).reshape(n, 8) + layer.bias
    torch.testing.assert_close(out, want)
    assert not torch.allclose(out, plain.train()(x, ei))


def test_segment_softmax_is_stable_and_sums_to_one() -> None:
    scores = torch.tensor([[1000.0], [1001.0], [-5.0], [3.0]])  # exp(1000) overflows without the shift
    index = torch.tensor([0, 0, 2, 2])
    out = segment_softmax(scores, index, 3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:2, 0], torch.softmax(scores[:2, 0], 0))
    torch.testing.assert_close(out[2:, 0], torch.softmax(scores[2:, 0], 0))


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_sparse_dropout_drops_only_stored_values_and_keeps_the_mean(layout: str) -> None:
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(200, 50, generator=g) * (torch.rand(200, 50, generator=g) < 0.1)  # ~10% non-zeros
    x = dense.to_sparse_csr() if layout == "csr" else dense.to_sparse()
    assert sparse_dropout(x, 0.5, training=False) is x
    torch.manual_seed(0)
    total = torch.zeros_like(dense)
    n = 400
    for _ in range(n):
        d = sparse_dropout(x, 0.5).to_dense()
        assert (d[dense == 0] == 0).all()  # a zero is never touched
        kept = d[dense != 0]
        # Each stored value is either dropped or scaled by 1 / (1 - p).
        assert torch.all((kept == 0) | torch.isclose(kept, 2 * dense[dense != 0]))
        total += d
    mean = total / n
    # E[x~] = x: the average of 400 draws is within a few standard errors (x / sqrt(n)).
    err = (mean - dense).abs()
    assert (err <= 5 * dense / n**0.5 + 1e-6).all()
    assert 0.45 < float((d[dense != 0] == 0).float().mean()) < 0.55
