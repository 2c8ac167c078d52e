"""Graph convolutional networks: shapes and agreement with the dense GCN propagation."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch, Data

from archzoo.models.gnn import gcn_graph, gcn_node


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
