"""EdgeMessage equals a written-out loop over the edges, and is equivariant to node order."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers.mpnn import EdgeMessage

# A tiny directed graph: 4 nodes, node 3 has no incoming edge, node 1 has three.
EDGES = torch.tensor([[0, 2, 3, 1, 0, 3], [1, 1, 1, 2, 2, 0]])


def _graph(dim: int = 5, edge_dim: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, dim, generator=g), EDGES.clone(), torch.randn(EDGES.size(1), edge_dim, generator=g)


def _loop(layer: EdgeMessage, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor | None, mean: bool):
    """The layer's formula, one edge at a time: m_i = sum (or mean) of MLP([h_i, h_j, e_ji]), then the update."""
    n, d = x.shape
    msgs = [[] for _ in range(n)]
    for k in range(edge_index.size(1)):
        j, i = int(edge_index[0, k]), int(edge_index[1, k])  # j -> i
        parts = [x[i], x[j]] + ([edge_attr[k]] if edge_attr is not None else [])
        msgs[i].append(layer.mlp(torch.cat(parts)))
    m = torch.stack(
        [(torch.stack(ms).mean(0) if mean else torch.stack(ms).sum(0)) if ms else torch.zeros(d) for ms in msgs]
    )
    if layer.gru is not None:
        return torch.stack([layer.gru(m[v : v + 1], x[v : v + 1])[0] for v in range(n)])
    return x + m


@pytest.mark.parametrize("update", ["gru", "residual"])
@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_equals_a_loop_over_edges(update: str, aggr: str) -> None:
    torch.manual_seed(0)
    layer = EdgeMessage(5, 3, hidden=7, aggr=aggr, update=update)
    x, ei, ea = _graph()
    with torch.no_grad():
        got = layer(x, ei, ea)
        want = _loop(layer, x, ei, ea, mean=aggr == "mean")
    assert got.shape == (4, 5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # Node 3 has no incoming edge: its message is zero.
    if update == "residual":
        torch.testing.assert_close(got[3], x[3], atol=1e-6, rtol=0)


def test_without_edge_features_the_message_sees_both_ends_only() -> None:
    torch.manual_seed(0)
    layer = EdgeMessage(5, 0, update="residual")
    x, ei, _ = _graph()
    with torch.no_grad():
        torch.testing.assert_close(layer(x, ei), _loop(layer, x, ei, None, mean=False), atol=1e-5, rtol=0)


def test_permuting_the_nodes_permutes_the_output() -> None:
    torch.manual_seed(0)
    layer = EdgeMessage(5, 3)
    x, ei, ea = _graph()
    perm = torch.tensor([2, 0, 3, 1])  # new node k is old node perm[k]
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(4)
    edge_perm = torch.tensor([4, 0, 5, 2, 1, 3])  # the edges' order does not matter either
    with torch.no_grad():
        out = layer(x, ei, ea)
        out_p = layer(x[perm], inv[ei][:, edge_perm], ea[edge_perm])
    torch.testing.assert_close(out_p, out[perm], atol=1e-5, rtol=0)


def test_bad_options_and_edge_features_are_refused() -> None:
    with pytest.raises(UserError, match="update must be one of gru, residual"):
        EdgeMessage(4, 2, update="lstm")
    with pytest.raises(UserError, match="aggregation must be one of sum, mean"):
        EdgeMessage(4, 2, aggr="max")
    x, ei, ea = _graph(4, 3)
    with pytest.raises(UserError, match="edge_attr of width 2"):
        EdgeMessage(4, 2)(x, ei, ea)
