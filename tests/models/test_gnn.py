"""Graph networks: shapes, agreement with the dense propagation, scratch vs PyG layers, sparse input dropout."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from archzoo.errors import UserError
from archzoo.models.gnn import appnp_node, gat_node, gcn_graph, gcn_node, sage_node


def _graph() -> Data:
    # A path 0-1-2-3 with a chord 1-3 and an isolated node 4; both directions of every edge.
    pairs = [(0, 1), (1, 2), (2, 3), (1, 3)]
    src = [a for a, b in pairs] + [b for a, b in pairs]
    dst = [b for a, b in pairs] + [a for a, b in pairs]
    g = torch.Generator().manual_seed(0)
    return Data(x=torch.randn(5, 4, generator=g), edge_index=torch.tensor([src, dst]))


def test_gcn_layer_matches_dense_propagation() -> None:
    torch.manual_seed(0)
    model = gcn_node(num_node_features=4, num_classes=3, hidden=6).eval()
    data = _graph()
    n = data.num_nodes
    a = torch.zeros(n, n)
    a[data.edge_index[0], data.edge_index[1]] = 1.0
    a_hat = a + torch.eye(n)  # self-loops
    d_inv_sqrt = a_hat.sum(1).pow(-0.5)
    norm = d_inv_sqrt[:, None] * a_hat * d_inv_sqrt[None, :]  # D^-1/2 (A+I) D^-1/2
    conv = model.conv1
    dense = norm @ data.x @ conv.lin.weight.T + conv.bias  # (N, hidden)
    torch.testing.assert_close(conv(data.x, data.edge_index), dense, atol=1e-5, rtol=0)
    # The whole model in eval: relu between the two propagations, no dropout.
    h = torch.relu(dense)
    out = norm @ h @ model.conv2.lin.weight.T + model.conv2.bias
    torch.testing.assert_close(model(data), out, atol=1e-5, rtol=0)
    assert torch.allclose(model.forward_features(data), h, atol=1e-5)


def test_gcn_node_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = gcn_node(num_node_features=4, num_classes=2)
    data = _graph()
    model.eval()
    torch.testing.assert_close(model(data), model(data))
    model.train()
    assert not torch.equal(model(data), model(data))
    assert model(*model.example_input()).shape == (3, 2)


def test_gcn_graph_pools_each_graph() -> None:
    torch.manual_seed(0)
    model = gcn_graph(num_node_features=4, num_classes=3, hidden=8, layers=3).eval()
    graphs = [_graph(), Data(x=torch.randn(2, 4), edge_index=torch.tensor([[0, 1], [1, 0]]))]
    batch = Batch.from_data_list(graphs)
    out = model(batch)
    assert out.shape == (2, 3)
    # Each graph alone gives the same logits as in the batch: pooling does not mix graphs.
    for i, g in enumerate(graphs):
        torch.testing.assert_close(model(Batch.from_data_list([g]))[0], out[i], atol=1e-6, rtol=0)
    assert len(model.convs) == 3
    assert model(*model.example_input(4)).shape == (4, 3)


# ----------------------------------------------------------------------------- node models on PyG and from scratch


def _sparse_graph() -> Data:
    """The graph of ``_graph`` with mostly-zero features, as bag-of-words are."""
    data = _graph()
    data.x = data.x * (data.x > 0.7)
    return data


def test_gcn_node_scratch_equals_pyg_with_the_same_weights() -> None:
    torch.manual_seed(0)
    pyg = gcn_node(num_node_features=4, num_classes=3, hidden=6, cached=True).eval()
    ours = gcn_node(num_node_features=4, num_classes=3, hidden=6, impl="scratch", cached=True).eval()
    state = {k.replace("lin.", ""): v for k, v in pyg.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    data = _graph()
    torch.testing.assert_close(ours(data), pyg(data), atol=1e-5, rtol=0)


def test_gat_node_scratch_equals_pyg_with_the_same_weights() -> None:
    torch.manual_seed(0)
    kw = {"num_node_features": 4, "num_classes": 3, "hidden": 5, "heads": 3, "out_heads": 2}
    pyg = gat_node(**kw).eval()
    ours = gat_node(**kw, impl="scratch").eval()
    ours.load_state_dict({k.replace("lin.", ""): v for k, v in pyg.state_dict().items()}, strict=True)
    data = _graph()
    out = pyg(data)
    assert out.shape == (5, 3) and pyg.forward_features(data).shape == (5, 15)
    torch.testing.assert_close(ours(data), out, atol=1e-5, rtol=0)


def test_gat_node_feature_dropout_acts_on_both_scratch_layers_and_is_refused_for_pyg() -> None:
    from archzoo.errors import UserError

    kw = {"num_node_features": 4, "num_classes": 3, "hidden": 5, "heads": 3}
    model = gat_node(**kw, impl="scratch", feature_dropout=0.6)
    assert model.conv1.feature_dropout == model.conv2.feature_dropout == 0.6
    with pytest.raises(UserError, match="needs model.args.impl=scratch"):
        gat_node(**kw, feature_dropout=0.6)
    with pytest.raises(UserError, match=r"must be in \[0, 1\)"):
        gat_node(**kw, impl="scratch", feature_dropout=1.0)


@pytest.mark.parametrize(
    ("build", "impl"),
    [(gcn_node, "pyg"), (gcn_node, "scratch"), (gat_node, "pyg"), (gat_node, "scratch"),
     (appnp_node, None), (sage_node, None)],  # APPNP and SAGE have one implementation
)  # fmt: skip
def test_sparse_input_gives_the_dense_output_in_eval_and_drops_only_non_zeros(build, impl: str | None) -> None:
    kw = {} if impl is None else {"impl": impl}
    torch.manual_seed(0)
    dense = build(num_node_features=4, num_classes=3, **kw).eval()
    sparse = build(num_node_features=4, num_classes=3, sparse_input=True, **kw).eval()
    sparse.load_state_dict(dense.state_dict())
    data = _sparse_graph()
    torch.testing.assert_close(sparse(data), dense(data), atol=1e-5, rtol=0)
    sparse.train()
    dropped = sparse.input_dropout(data.x)
    assert dropped.layout == torch.sparse_csr
    d = dropped.to_dense()
    assert (d[data.x == 0] == 0).all()  # zeros stay zeros
    nz = data.x != 0
    assert torch.all((d[nz] == 0) | torch.isclose(d[nz], data.x[nz] / (1 - sparse.input_dropout.p)))
    out = sparse(data)
    out.square().mean().backward()  # gradients flow through the sparse × dense first layer
    assert all(p.grad is not None for p in sparse.parameters())
    # The sparse copy is made once for the same feature tensor.
    assert sparse.input_dropout.as_sparse(data.x) is sparse.input_dropout.as_sparse(data.x)


def test_appnp_propagates_the_mlp_prediction_by_personalised_pagerank() -> None:
    torch.manual_seed(0)
    model = appnp_node(num_node_features=4, num_classes=3, hidden=8, K=10, alpha=0.1).eval()
    data = _graph()
    n = data.num_nodes
    a = torch.zeros(n, n)
    a[data.edge_index[1], data.edge_index[0]] = 1.0
    a_hat = a + torch.eye(n)
    d = a_hat.sum(1).pow(-0.5)
    norm = d[:, None] * a_hat * d[None, :]
    h = model.lin2(torch.relu(model.lin1(data.x)))
    z = h
    for _ in range(10):
        z = 0.9 * norm @ z + 0.1 * h
    torch.testing.assert_close(model(data), z, atol=1e-5, rtol=0)


def test_sage_node_shapes_and_bad_options() -> None:
    model = sage_node(num_node_features=4, num_classes=3, hidden=6)
    assert model(_graph()).shape == (5, 3)
    with pytest.raises(UserError, match="impl"):
        gcn_node(num_node_features=4, num_classes=3, impl="dense")
    with pytest.raises(UserError, match="alpha"):
        appnp_node(num_node_features=4, num_classes=3, alpha=0.0)
