"""The written-out R-GCN layer: the equation by hand, and PyG's RGCNConv / FastRGCNConv with the same weights."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import FastRGCNConv, RGCNConv

from archzoo.layers.rgcn import RGCNLayer, relation_norm

# 5 nodes, 3 relations; node 4 receives nothing, node 1 receives two edges of relation 0.
SRC = [0, 2, 3, 1, 2, 4, 0, 3]
DST = [1, 1, 1, 2, 0, 3, 3, 2]
TYPE = [0, 0, 1, 2, 1, 0, 2, 0]


def _graph() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([SRC, DST]), torch.tensor(TYPE)


def _dense(x: torch.Tensor, w: torch.Tensor, root: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """h_i = W_0 h_i + b + sum_r mean_{j in N_r(i)} W_r h_j, with one dense adjacency per relation."""
    n, r = x.size(0), w.size(0)
    out = x @ root + bias
    for rel in range(r):
        a = torch.zeros(n, n)
        for s, d, t in zip(SRC, DST, TYPE, strict=True):
            if t == rel:
                a[d, s] += 1.0
        deg = a.sum(1, keepdim=True).clamp_min(1.0)
        out = out + (a / deg) @ x @ w[rel]
    return out


def test_relation_norm_counts_each_targets_edges_of_each_relation() -> None:
    ei, et = _graph()
    # Node 1 receives two edges of relation 0 (from 0 and 2): each weighs 1/2. Every other
    # (target, relation) pair has one edge, such as 3 -> 1 (relation 1) beside those two.
    expect = torch.tensor([0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(relation_norm(ei, et, 5, 3, torch.float32), expect)


def test_layer_computes_the_equation() -> None:
    torch.manual_seed(0)
    layer = RGCNLayer(4, 3, num_relations=3)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(5, 4)
    ei, et = _graph()
    out = layer(x, ei, et)
    torch.testing.assert_close(out, _dense(x, layer.weight, layer.root, layer.bias), atol=1e-5, rtol=0)
    # Node 4 receives no edge: only its self-connection and the bias.
    torch.testing.assert_close(out[4], x[4] @ layer.root + layer.bias, atol=1e-6, rtol=0)


def test_bases_combine_into_the_relation_weights() -> None:
    torch.manual_seed(0)
    layer = RGCNLayer(4, 3, num_relations=3, num_bases=2)
    w = layer.relation_weights()
    assert w.shape == (3, 4, 3)
    by_hand = torch.stack([sum(layer.comp[r, b] * layer.weight[b] for b in range(2)) for r in range(3)])
    torch.testing.assert_close(w, by_hand, atol=1e-6, rtol=0)
    x = torch.randn(5, 4)
    torch.testing.assert_close(layer(x, *_graph()), _dense(x, w, layer.root, layer.bias), atol=1e-5, rtol=0)


def test_blocks_act_on_feature_groups_alone() -> None:
    torch.manual_seed(0)
    layer = RGCNLayer(4, 6, num_relations=3, num_blocks=2)
    assert layer.weight.shape == (3, 2, 2, 3)
    full = torch.zeros(3, 4, 6)  # the block-diagonal W_r, written out
    full[:, :2, :3] = layer.weight[:, 0]
    full[:, 2:, 3:] = layer.weight[:, 1]
    x = torch.randn(5, 4)
    torch.testing.assert_close(layer(x, *_graph()), _dense(x, full, layer.root, layer.bias), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="node features"):
        layer(None, *_graph())
    with pytest.raises(ValueError, match="divide"):
        RGCNLayer(4, 5, num_relations=3, num_blocks=2)
    with pytest.raises(ValueError, match="not both"):
        RGCNLayer(4, 6, num_relations=3, num_bases=2, num_blocks=2)


def test_featureless_input_is_the_one_hot_identity() -> None:
    torch.manual_seed(0)
    layer = RGCNLayer(5, 3, num_relations=3, num_bases=2)
    ei, et = _graph()
    out = layer(None, ei, et)
    torch.testing.assert_close(out, layer(torch.eye(5), ei, et), atol=1e-6, rtol=0)
    # Node ids select the rows: the identity permutation is the same as no input.
    torch.testing.assert_close(layer(torch.arange(5), ei, et), out, atol=1e-6, rtol=0)


CASES = [
    pytest.param({}, True, id="full-features"),
    pytest.param({}, False, id="full-featureless"),
    pytest.param({"num_bases": 2}, True, id="bases-features"),
    pytest.param({"num_bases": 2}, False, id="bases-featureless"),
    pytest.param({"num_blocks": 2}, True, id="blocks-features"),
]


@pytest.mark.parametrize("pyg_class", [RGCNConv, FastRGCNConv])
@pytest.mark.parametrize(("tie", "features"), CASES)
def test_layer_equals_pyg_with_the_same_weights(pyg_class: type, tie: dict, features: bool) -> None:
    torch.manual_seed(0)
    in_ch = 4 if features else 5  # featureless: one input row per node
    pyg = pyg_class(in_ch, 6, num_relations=3, **tie)
    torch.nn.init.normal_(pyg.bias)
    ours = RGCNLayer(in_ch, 6, num_relations=3, **tie)
    ours.load_state_dict(pyg.state_dict())  # the same names and layout
    x = torch.randn(5, 4, requires_grad=True) if features else None
    ei, et = _graph()
    out_pyg = pyg(x, ei, et)
    out = ours(x, ei, et)
    torch.testing.assert_close(out, out_pyg, atol=1e-5, rtol=0)
    names = [k for k, _ in pyg.named_parameters()]
    assert names == [k for k, _ in ours.named_parameters()]
    grads_pyg = torch.autograd.grad(out_pyg.square().sum(), list(pyg.parameters()))
    grads = torch.autograd.grad(out.square().sum(), list(ours.parameters()))
    for name, g_ours, g_pyg in zip(names, grads, grads_pyg, strict=True):
        torch.testing.assert_close(g_ours, g_pyg, atol=1e-5, rtol=0, msg=lambda m, n=name: f"grad of {n}: {m}")
