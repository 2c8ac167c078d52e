r"""Sets of small graphs for graph generation: two-community graphs as in GraphRNN's community-small.

``community_small`` (You et al. 2018, https://arxiv.org/abs/1802.08773, Section 4.1): each
graph has two communities of 6–10 nodes (12–20 nodes in all), each an Erdős–Rényi graph
with edge probability 0.3, joined by :math:`\max(1, \mathrm{round}(0.05\,|V|))` random edges
between the communities. The graphs are drawn from a fixed seed and split at random (the
same seed) into train, validation and test; node features are the one-hot degree.

``info["train_sizes"]`` holds the training graphs' node counts, from which a generator
draws the sizes of the graphs it samples.
"""

from __future__ import annotations

from typing import Any

import torch

from archzoo.data.graphs import DATA_SEED, check_graph
from archzoo.data.splits import DataBundle, GraphBatches
from archzoo.errors import UserError
from archzoo.registry import register_dataset


def community_graph(sizes: tuple[int, int], p: float, generator: torch.Generator) -> torch.Tensor:
    """``edge_index`` :math:`(2, 2E)` of one two-community graph (both directions; nodes of community 0 first)."""
    n0, n1 = sizes
    n = n0 + n1
    block = torch.zeros(n, n, dtype=torch.bool)
    block[:n0, :n0] = True
    block[n0:, n0:] = True
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    adj = (torch.rand(n, n, generator=generator) < p) & block & upper  # (n, n): intra-community pairs i < j
    k = max(1, round(0.05 * n))
    src = torch.randint(n0, (k,), generator=generator)
    dst = n0 + torch.randint(n1, (k,), generator=generator)
    adj[src, dst] = True  # inter-community edges (i < j since community 0 comes first)
    e = adj.nonzero().T  # (2, E)
    return torch.cat([e, e.flip(0)], 1)


def graph_set(edge_indices: list[torch.Tensor], num_nodes: list[int], width: int, name: str) -> list[Any]:
    """PyG graphs with one-hot degree features of ``width`` (degrees above ``width - 1`` share the last column)."""
    from torch_geometric.data import Data

    graphs = []
    for ei, n in zip(edge_indices, num_nodes, strict=True):
        degree = torch.bincount(ei[0], minlength=n).clamp(max=width - 1)  # (n,)
        d = Data(x=torch.nn.functional.one_hot(degree, width).float(), edge_index=ei, num_nodes=n)
        check_graph(d, name)
        graphs.append(d)
    return graphs


@register_dataset("community_small")
def community_small(
    n_graphs: int = 200,
    min_community: int = 6,
    max_community: int = 10,
    p: float = 0.3,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DataBundle:
    """Two-community graphs of 12–20 nodes (GraphRNN's community-small), for graph generation.

    Args:
        n_graphs: graphs over all splits (default 200).
        min_community: fewest nodes of a community (default 6).
        max_community: most nodes of a community (default 10).
        p: edge probability inside a community (default 0.3).
        val_fraction: share for validation (default 0.2).
        test_fraction: share held out for test, against which samples are scored (default 0.2).
    """
    if not 2 <= min_community <= max_community:
        raise UserError(
            f"community_small needs 2 <= min_community <= max_community, got {min_community}, {max_community}."
        )
    if not 0.0 < p <= 1.0:
        raise UserError(f"community_small needs 0 < p <= 1, got {p}.")
    g = torch.Generator().manual_seed(DATA_SEED)
    eis, ns = [], []
    for _ in range(n_graphs):
        sizes = tuple(int(s) for s in torch.randint(min_community, max_community + 1, (2,), generator=g))
        eis.append(community_graph(sizes, p, g))  # type: ignore[arg-type]
        ns.append(sum(sizes))
    width = 2 * max_community
    graphs = graph_set(eis, ns, width, "community_small")
    perm = torch.randperm(n_graphs, generator=g).tolist()
    n_val, n_test = int(n_graphs * val_fraction), int(n_graphs * test_fraction)
    if min(n_val, n_test, n_graphs - n_val - n_test) < 1:
        raise UserError(f"community_small: {n_graphs} graphs leave an empty split; raise data.args.n_graphs.")
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    info: dict[str, Any] = {
        "num_node_features": width,
        "max_nodes": 2 * max_community,
        "train_sizes": [ns[i] for i in train],
        "kind": "graphs",
    }
    return DataBundle(*(GraphBatches([graphs[i] for i in s]) for s in (train, val, test)), info=info)
