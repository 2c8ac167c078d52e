"""The R-GCN node classifier: three implementations of one function, its options, and learning a relational rule."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from archzoo.errors import UserError
from archzoo.models.rgcn import rgcn_node


def _graph() -> Data:
    # 6 nodes, 4 relations (2 predicates and their inverses); node 5 is isolated.
    src = torch.tensor([0, 1, 2, 3, 0, 4])
    dst = torch.tensor([1, 2, 3, 4, 2, 0])
    pred = torch.tensor([0, 0, 1, 1, 1, 0])
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    edge_type = torch.cat([2 * pred, 2 * pred + 1])
    return Data(edge_index=edge_index, edge_type=edge_type, num_nodes=6)


@pytest.mark.parametrize("tie", [{}, {"num_bases": 2}, {"num_blocks": 2}], ids=["full", "bases", "blocks"])
def test_the_three_implementations_agree_with_the_same_weights(tie: dict) -> None:
    torch.manual_seed(0)
    args = {"num_nodes": 6, "num_relations": 4, "num_classes": 2, "hidden": 8, "layers": 3, **tie}
    pyg = rgcn_node(**args, impl="pyg").eval()
    for impl in ("pyg_fast", "scratch"):
        other = rgcn_node(**args, impl=impl).eval()
        other.load_state_dict(pyg.state_dict())  # strict: the same parameter names and shapes
        data = _graph()
        torch.testing.assert_close(other(data), pyg(data), atol=1e-5, rtol=0)
        torch.testing.assert_close(other.forward_features(data), pyg.forward_features(data), atol=1e-5, rtol=0)
    assert pyg(_graph()).shape == (6, 2) and pyg.forward_features(_graph()).shape == (6, 8)


def test_the_first_layer_is_featureless_and_blocks_act_after_it() -> None:
    model = rgcn_node(num_nodes=6, num_relations=4, num_classes=2, hidden=8, num_blocks=2, impl="scratch")
    first, second = model.convs
    assert first.weight.shape == (4, 6, 8) and first.num_blocks is None  # a row per node and relation
    assert second.weight.shape == (4, 2, 4, 1)  # (R, B, hidden/B, classes/B)
    bases = rgcn_node(num_nodes=6, num_relations=4, num_classes=2, num_bases=3, impl="scratch")
    assert [c.weight.shape[0] for c in bases.convs] == [3, 3] and bases.convs[0].comp.shape == (4, 3)


def test_dropout_acts_between_layers_in_training_only() -> None:
    torch.manual_seed(0)
    model = rgcn_node(num_nodes=6, num_relations=4, num_classes=2, dropout=0.5, impl="scratch")
    data = _graph()
    model.eval()
    torch.testing.assert_close(model(data), model(data))
    model.train()
    assert not torch.equal(model(data), model(data))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"impl": "dgl"}, "impl must be one of pyg, pyg_fast, scratch"),
        ({"num_bases": 2, "num_blocks": 2}, "not both"),
        ({"num_blocks": 3}, "must divide hidden=16 and num_classes=2"),
        ({"num_blocks": 2, "layers": 1}, "layers >= 2"),
        ({"layers": 0}, "at least 1"),
        ({"num_bases": -1}, ">= 0"),
        ({"dropout": 1.0}, r"\[0, 1\)"),
        ({"dropout": 0.5, "layers": 1}, "dropout acts between layers"),
    ],
)
def test_bad_options_are_refused_in_one_sentence(args: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        rgcn_node(num_nodes=6, num_relations=4, num_classes=2, **args)


def test_learns_a_label_that_only_the_relation_types_carry() -> None:
    # Ten "people", each linked to a "group" node 10 or 11 by the same predicate, and to a
    # shared "city" node 12 by a relation that says nothing. The label is the group: the
    # model must tell the groups apart through the per-relation weights.
    people = torch.arange(10)
    group = 10 + (people % 2)
    src = torch.cat([people, people])
    dst = torch.cat([group, torch.full((10,), 12)])
    pred = torch.cat([torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    data = Data(
        edge_index=torch.stack([torch.cat([src, dst]), torch.cat([dst, src])]),
        edge_type=torch.cat([2 * pred, 2 * pred + 1]),
        num_nodes=13,
    )
    y = people % 2
    torch.manual_seed(0)
    model = rgcn_node(num_nodes=13, num_relations=4, num_classes=2, impl="scratch")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    train = torch.tensor([0, 1, 2, 3])  # two of each group; the other six are held out
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(model(data)[train], y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred_y = model.eval()(data)[:10].argmax(1)
    assert torch.equal(pred_y[4:], y[4:10])
