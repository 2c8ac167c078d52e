"""Graph datasets that need no download: Zachary's karate club and synthetic shapes.

* ``karate``: the 34 members of a university karate club and their 78
  friendships (Zachary 1977, from ``networkx.karate_club_graph()``); each node is
  labelled by the club it joined after the split ('Mr. Hi' or 'Officer'). Node
  features are the one-hot identity, so a GCN can only learn from the graph's
  structure: the semi-supervised setting of Kipf & Welling (2017) in miniature.
* ``graph_shapes``: cycles, paths and stars of 5–12 nodes, one class each, with
  the one-hot node degree as feature; a graph classifier must pool over nodes.

``networkx`` and ``torch_geometric`` are imported when a dataset is built.
"""

from __future__ import annotations

from typing import Any

import torch

from archzoo.data.splits import DataBundle, FullGraph, GraphBatches
from archzoo.errors import UserError
from archzoo.registry import register_dataset

#: The seed of the fixed masks and of the generated graphs: they do not change with the run's seed.
DATA_SEED = 0


def _undirected(edges: list[tuple[int, int]]) -> torch.Tensor:
    """``edge_index`` :math:`(2, 2E)` holding both directions of each edge."""
    e = torch.tensor(edges, dtype=torch.long).T  # (2, E)
    return torch.cat([e, e.flip(0)], 1)


def _stratified_masks(y: torch.Tensor, train_per_class: int, val: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Boolean masks: ``train_per_class`` nodes of each class, then ``val`` nodes taken alternately per class."""
    g = torch.Generator().manual_seed(seed)
    n = len(y)
    train, val_mask = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    rest: list[list[int]] = []
    for c in y.unique().tolist():
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        if len(idx) <= train_per_class:
            raise UserError(f"class {c} has {len(idx)} nodes, too few for {train_per_class} training nodes.")
        train[idx[:train_per_class]] = True
        rest.append(idx[train_per_class:].tolist())
    # Round-robin over the classes, so the validation nodes are balanced too.
    order = [i for group in zip(*rest, strict=False) for i in group]
    order += [i for r in rest for i in r[min(map(len, rest)) :]]
    if val >= len(order):
        raise UserError(f"{val} validation nodes leave no test nodes of the {n}.")
    val_mask[order[:val]] = True
    test = ~(train | val_mask)
    return train, val_mask, test


@register_dataset("karate")
def karate(train_per_class: int = 4, val_nodes: int = 10) -> DataBundle:
    """Zachary's karate club: predict each member's club from 4 labelled members per club.

    Args:
        train_per_class: labelled training nodes per club (default 4).
        val_nodes: validation nodes, balanced over the clubs (default 10); the rest test.
    """
    import networkx as nx
    from torch_geometric.data import Data

    graph = nx.karate_club_graph()
    clubs = sorted({graph.nodes[v]["club"] for v in graph.nodes})  # ['Mr. Hi', 'Officer']
    y = torch.tensor([clubs.index(graph.nodes[v]["club"]) for v in sorted(graph.nodes)])
    n = graph.number_of_nodes()
    train, val, test = _stratified_masks(y, train_per_class, val_nodes, DATA_SEED)
    data = Data(
        x=torch.eye(n),  # (34, 34): one-hot identity
        edge_index=_undirected(sorted(graph.edges)),
        y=y,
        train_mask=train,
        val_mask=val,
        test_mask=test,
    )
    info: dict[str, Any] = {
        "num_node_features": n,
        "num_classes": len(clubs),
        "classes": clubs,
        "num_nodes": n,
        "kind": "graph_nodes",
    }
    return DataBundle(*FullGraph.splits(data), info=info)


SHAPES = ("cycle", "path", "star")


def _shape_edges(shape: str, n: int) -> list[tuple[int, int]]:
    if shape == "cycle":
        return [(i, (i + 1) % n) for i in range(n)]
    if shape == "path":
        return [(i, i + 1) for i in range(n - 1)]
    return [(0, i) for i in range(1, n)]  # star: node 0 is the hub


@register_dataset("graph_shapes")
def graph_shapes(
    n_graphs: int = 300,
    min_nodes: int = 5,
    max_nodes: int = 12,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> DataBundle:
    """Tell cycles, paths and stars apart; node features are the one-hot degree.

    The graphs are drawn in turn from the three shapes with a random size and node
    order (fixed seed), then split at random (the same seed) into train, val and test.

    Args:
        n_graphs: graphs over all splits (default 300, a third of each shape).
        min_nodes: fewest nodes (default 5).
        max_nodes: most nodes (default 12).
        val_fraction: share for validation (default 0.15).
        test_fraction: share for the test split (default 0.15).
    """
    from torch_geometric.data import Data

    if not 3 <= min_nodes <= max_nodes:
        raise UserError(f"graph_shapes needs 3 <= min_nodes <= max_nodes, got {min_nodes} and {max_nodes}.")
    g = torch.Generator().manual_seed(DATA_SEED)
    width = max_nodes  # degrees 0 .. max_nodes - 1 (a star's hub)
    graphs = []
    for k in range(n_graphs):
        label = k % len(SHAPES)
        n = int(torch.randint(min_nodes, max_nodes + 1, (1,), generator=g))
        relabel = torch.randperm(n, generator=g)  # so the hub or a path's end is not always node 0
        edge_index = relabel[_undirected(_shape_edges(SHAPES[label], n))]  # (2, 2E)
        degree = torch.bincount(edge_index[0], minlength=n)  # (n,)
        x = torch.nn.functional.one_hot(degree, width).float()  # (n, max_nodes)
        graphs.append(Data(x=x, edge_index=edge_index, y=torch.tensor([label])))
    perm = torch.randperm(n_graphs, generator=g).tolist()
    n_val, n_test = int(n_graphs * val_fraction), int(n_graphs * test_fraction)
    if min(n_val, n_test, n_graphs - n_val - n_test) < 1:
        raise UserError(f"graph_shapes: {n_graphs} graphs leave an empty split; raise data.args.n_graphs.")
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    info: dict[str, Any] = {
        "num_node_features": width,
        "num_classes": len(SHAPES),
        "classes": list(SHAPES),
        "kind": "graphs",
    }
    return DataBundle(*(GraphBatches([graphs[i] for i in s]) for s in (train, val, test)), info=info)
