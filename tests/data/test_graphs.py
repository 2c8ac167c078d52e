"""Graph datasets: the karate club as one graph with fixed masks, and synthetic shapes as graph batches."""

from __future__ import annotations

import torch

from archzoo.registry import create_dataset


def test_karate_masks_are_fixed_stratified_and_disjoint() -> None:
    b = create_dataset("karate")
    assert b.info["num_node_features"] == 34 and b.info["num_classes"] == 2
    assert b.info["classes"] == ["Mr. Hi", "Officer"]
    graphs = [next(iter(s.batches(1))) for s in (b.train, b.val, b.test)]
    data = graphs[0]
    assert data.num_nodes == 34 and data.edge_index.shape == (2, 156)  # 78 friendships, both directions
    assert torch.equal(data.x, torch.eye(34))
    assert int(data.y[0]) == 0 and int(data.y[33]) == 1  # the instructor and the administrator
    masks = [g.mask for g in graphs]
    assert [int(m.sum()) for m in masks] == [8, 10, 16]
    assert torch.equal(sum(m.long() for m in masks), torch.ones(34, dtype=torch.long))
    assert torch.bincount(data.y[masks[0]]).tolist() == [4, 4]
    assert torch.bincount(data.y[masks[1]]).tolist() == [5, 5]
    again = next(iter(create_dataset("karate").train.batches(1)))
    assert torch.equal(again.mask, masks[0])


def test_graph_shapes_are_told_by_degree() -> None:
    b = create_dataset("graph_shapes", n_graphs=30)
    assert b.info["num_classes"] == 3 and b.info["num_node_features"] == 12
    assert (len(b.train), len(b.val), len(b.test)) == (22, 4, 4)
    batch = next(iter(b.train.batches(22)))
    assert batch.num_graphs == 22 and batch.y.shape == (22,)
    for i in range(batch.num_graphs):
        g = batch.get_example(i)
        n, degree = g.num_nodes, g.x.argmax(1)
        assert 5 <= n <= 12 and torch.equal(torch.bincount(g.edge_index[0], minlength=n), degree)
        shape = ["cycle", "path", "star"][int(g.y)]
        expect = {"cycle": [2] * n, "path": [1, 1] + [2] * (n - 2), "star": [1] * (n - 1) + [n - 1]}[shape]
        assert sorted(degree.tolist()) == expect
