"""GIN: the written-out layer equals PyG's GINConv and the dense formula; the model's readouts, heads and options."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GINConv

from archzoo.errors import UserError
from archzoo.layers.gin import GINLayer
from archzoo.models.gin import gin_graph, gin_mlp


def _graph(n_features: int = 4, seed: int = 0) -> Data:
    # A path 0-1-2-3 with a chord 1-3, the edge 0->2 twice (a multigraph: the sum counts it twice),
    # and an isolated node 4.
    pairs = [(0, 1), (1, 2), (2, 3), (1, 3)]
    src = [a for a, b in pairs] + [b for a, b in pairs] + [0, 0]
    dst = [b for a, b in pairs] + [a for a, b in pairs] + [2, 2]
    g = torch.Generator().manual_seed(seed)
    return Data(x=torch.randn(5, n_features, generator=g), edge_index=torch.tensor([src, dst]))


def _pair(train_eps: bool) -> tuple[GINConv, GINLayer]:
    torch.manual_seed(0)
    pyg = GINConv(gin_mlp(4, 6), train_eps=train_eps)
    ours = GINLayer(gin_mlp(4, 6), train_eps=train_eps)
    ours.load_state_dict(pyg.state_dict(), strict=True)  # the same names: nn.*, eps
    if train_eps:
        with torch.no_grad():
            pyg.eps.fill_(0.3)
            ours.eps.fill_(0.3)
    return pyg, ours


@pytest.mark.parametrize("train_eps", [False, True])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gin_layer_equals_ginconv_outputs_and_gradients(train_eps: bool, mode: str) -> None:
    pyg, ours = _pair(train_eps)
    pyg.train(mode == "train")
    ours.train(mode == "train")
    data = _graph()
    x1 = data.x.clone().requires_grad_()
    x2 = data.x.clone().requires_grad_()
    a, b = pyg(x1, data.edge_index), ours(x2, data.edge_index)
    assert a.shape == (5, 6)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    w = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    (a * w).sum().backward()
    (b * w).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-5, rtol=0)
    for (name, p), q in zip(pyg.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=0, msg=name)
    assert (pyg.eps.grad is not None) == train_eps  # eps is learned only with train_eps


def test_gin_layer_is_the_dense_formula() -> None:
    _, ours = _pair(train_eps=True)
    ours.eval()
    data = _graph()
    n = data.num_nodes
    a = torch.zeros(n, n)
    a.index_put_((data.edge_index[1], data.edge_index[0]), torch.ones(data.edge_index.size(1)), accumulate=True)
    assert a[2, 0] == 2 and a[4].sum() == 0  # the doubled edge counts twice; node 4 has no neighbours
    dense = (a + 1.3 * torch.eye(n)) @ data.x  # ((1 + eps) I + A) X
    torch.testing.assert_close(ours(data.x, data.edge_index), ours.nn(dense), atol=1e-5, rtol=0)
    # The isolated node sees only itself: (1 + eps) x_4.
    torch.testing.assert_close(ours(data.x, data.edge_index)[4], ours.nn(1.3 * data.x)[4], atol=1e-5, rtol=0)


def test_eps_is_a_parameter_only_with_train_eps() -> None:
    fixed, learned = (
        gin_graph(num_node_features=4, num_classes=2),
        gin_graph(num_node_features=4, num_classes=2, train_eps=True),
    )
    assert not any(n.endswith("eps") for n, _ in fixed.named_parameters())
    assert sum(n.endswith("eps") for n, _ in learned.named_parameters()) == 4  # one per layer
    assert all(float(c.eps) == 0.0 for c in fixed.convs)


def _batch() -> Batch:
    return Batch.from_data_list([_graph(seed=0), Data(x=torch.randn(2, 4), edge_index=torch.tensor([[0, 1], [1, 0]])),
                                 _graph(seed=2)])  # fmt: skip


def test_gin_graph_scratch_equals_pyg_with_the_same_weights() -> None:
    torch.manual_seed(0)
    pyg = gin_graph(num_node_features=4, num_classes=3, hidden=8, layers=3, train_eps=True)
    ours = gin_graph(num_node_features=4, num_classes=3, hidden=8, layers=3, train_eps=True, impl="scratch")
    assert set(ours.state_dict()) == set(pyg.state_dict())
    ours.load_state_dict(pyg.state_dict(), strict=True)
    batch = _batch()
    for mode in (True, False):  # batch statistics in training, running ones in evaluation
        pyg.train(mode)
        ours.train(mode)
        torch.manual_seed(1)
        a = pyg(batch)
        torch.manual_seed(1)  # the same dropout masks
        torch.testing.assert_close(ours(batch), a, atol=1e-5, rtol=0)


def test_gin_graph_shapes_heads_and_per_graph_readout() -> None:
    torch.manual_seed(0)
    model = gin_graph(num_node_features=4, num_classes=3, hidden=8, layers=3).eval()
    batch = _batch()
    out = model(batch)
    assert out.shape == (3, 3)
    feats = model.forward_features(batch)
    assert feats.shape == (3, 4 + 3 * 8)  # the input's readout and one per layer
    assert len(model.convs) == 3 and len(model.readouts) == len(model.heads) == 4
    # The sum of the per-layer heads is one linear map of the concatenated readouts.
    w = torch.cat([h.weight for h in model.heads], 1)  # (C, 4 + 3*8)
    b = sum(h.bias for h in model.heads)
    torch.testing.assert_close(out, feats @ w.T + b, atol=1e-5, rtol=0)
    # The input layer's sum readout is the sum of each graph's features.
    torch.testing.assert_close(feats[:, :4], torch.stack([g.x.sum(0) for g in batch.to_data_list()]), atol=1e-5, rtol=0)
    # Each graph alone gives the logits it has in the batch (in eval: BatchNorm's running statistics).
    for i, g in enumerate(batch.to_data_list()):
        torch.testing.assert_close(model(Batch.from_data_list([g]))[0], out[i], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("readout", "width"), [("mean", 4 + 2 * 8), ("max", 4 + 2 * 8), ("attention", 4 + 2 * 8),
                                                 ("set2set", 2 * (4 + 2 * 8))])  # fmt: skip
def test_every_readout_trains(readout: str, width: int) -> None:
    torch.manual_seed(0)
    model = gin_graph(num_node_features=4, num_classes=2, hidden=8, layers=2, readout=readout)
    batch = _batch()
    assert model.forward_features(batch).shape == (3, width)
    model(batch).square().mean().backward()
    assert all(p.grad is not None for p in model.heads.parameters())


def test_sum_readout_counts_what_mean_cannot() -> None:
    # One node and two copies of it joined: the same mean state, twice the sum (Xu et al.'s argument for sum).
    x = torch.ones(1, 4)
    one = Data(x=x, edge_index=torch.zeros(2, 0, dtype=torch.long))
    two = Data(x=x.repeat(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    batch = Batch.from_data_list([one, two])
    torch.manual_seed(0)
    for readout, same in (("mean", True), ("sum", False)):
        f = (
            gin_graph(num_node_features=4, num_classes=2, hidden=8, layers=1, readout=readout)
            .eval()
            .forward_features(batch)
        )
        assert torch.allclose(f[0], f[1]) == same, readout


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"impl": "dense"}, "pyg or scratch"), ({"readout": "median"}, "Unknown readout 'median'"),
     ({"layers": 0}, "at least 1"), ({"dropout": 1.0}, r"in \[0, 1\)")],
)  # fmt: skip
def test_bad_options_are_refused_in_one_sentence(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        gin_graph(num_node_features=4, num_classes=2, **kwargs)
