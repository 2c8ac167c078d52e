r"""Link-prediction datasets: the edges of Cora and CiteSeer split into train, validation and test pairs.

:func:`link_split` cuts one graph's undirected edges as Kipf & Welling (2016) and PyG's
:class:`~torch_geometric.transforms.RandomLinkSplit` do: 85% of the edges for training,
5% for validation and 10% for test (each undirected edge once, in one split only), and
as many negative pairs (non-edges of the whole graph) as positives for validation and
test, drawn once from the split's seed. Message passing runs over the training edges
alone, in every split: a validation or test edge is never propagated over. The
training negatives are drawn afresh each epoch by the split
(:class:`~archzoo.data.splits.LinkSplit`).

* ``cora_links``: Cora's 5278 undirected citations (PyG's 10,556 directed ones, halved),
  row-normalised bag-of-words features: 4488 / 263 / 527 positive pairs.
* ``citeseer_links``: CiteSeer's 4552 undirected citations, the same way.

Both read the Planetoid files through :func:`archzoo.data.graphs.planetoid`; the node
labels and masks are not used.
"""

from __future__ import annotations

from typing import Any

import torch

from archzoo.data.graphs import check_graph, planetoid
from archzoo.data.root import PathLike
from archzoo.data.splits import DataBundle, LinkSplit
from archzoo.errors import UserError
from archzoo.registry import register_dataset

#: The seed of the edge split and of the fixed validation and test negatives (``split_seed``).
SPLIT_SEED = 0


def link_split(
    data: Any, val_fraction: float = 0.05, test_fraction: float = 0.10, seed: int = SPLIT_SEED
) -> DataBundle:
    """Split the undirected edges of ``data`` into the three :class:`~archzoo.data.splits.LinkSplit` s.

    Args:
        data: a PyG ``Data`` with ``x`` and an undirected ``edge_index`` (both directions stored).
        val_fraction: share of the edges for validation (default 0.05).
        test_fraction: share of the edges for test (default 0.10).
        seed: seed of the split and of the validation and test negatives (default 0).

    Raises:
        UserError: fractions outside ``[0, 1)`` or leaving no training edge, or a graph too small to split.
    """
    from torch_geometric.data import Data
    from torch_geometric.transforms import RandomLinkSplit
    from torch_geometric.utils import is_undirected

    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < f < 1.0:
            raise UserError(f"data.args.{name} must be between 0 and 1 (exclusive), got {f}.")
    if val_fraction + test_fraction >= 1.0:
        raise UserError(f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no training edges.")
    check_graph(data, "link prediction")
    if not is_undirected(data.edge_index, num_nodes=data.num_nodes):
        raise UserError("Link prediction here needs an undirected graph (each edge stored in both directions).")
    n_undirected = int((data.edge_index[0] < data.edge_index[1]).sum())
    if int(n_undirected * val_fraction) < 1 or int(n_undirected * test_fraction) < 1:  # as RandomLinkSplit counts
        raise UserError(f"The graph has {n_undirected} undirected edges, too few to split off validation and test.")
    graph = Data(x=data.x, edge_index=data.edge_index, num_nodes=data.num_nodes)
    split = RandomLinkSplit(
        num_val=val_fraction,
        num_test=test_fraction,
        is_undirected=True,
        split_labels=True,  # pos_edge_label_index / neg_edge_label_index
        add_negative_train_samples=False,  # the training split draws its own each epoch
    )
    with torch.random.fork_rng(devices=[]):  # RandomLinkSplit draws from torch's and Python's global streams
        import random

        state = random.getstate()
        try:
            torch.manual_seed(seed)
            random.seed(seed)
            train, val, test = split(graph)
        finally:
            random.setstate(state)
    # RandomLinkSplit lets the test graph propagate over the validation edges too; here every
    # split propagates over the training edges only, as in Kipf & Welling's code.
    mp = Data(x=data.x, edge_index=train.edge_index, num_nodes=data.num_nodes)
    info: dict[str, Any] = {
        "num_node_features": int(data.num_node_features),
        "num_nodes": int(data.num_nodes),
        "num_edges": n_undirected,
        "split_edges": [int(s.pos_edge_label_index.size(1)) for s in (train, val, test)],
        "kind": "graph_links",
    }
    return DataBundle(
        LinkSplit(mp, train.pos_edge_label_index, resample=True),
        LinkSplit(mp, val.pos_edge_label_index, val.neg_edge_label_index),
        LinkSplit(mp, test.pos_edge_label_index, test.neg_edge_label_index),
        info=info,
    )


def planetoid_links(
    name: str,
    data_dir: PathLike | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.10,
    split_seed: int = SPLIT_SEED,
    normalize_features: bool = True,
) -> DataBundle:
    """A Planetoid graph's edges split for link prediction (:func:`link_split`)."""
    bundle = planetoid(name, data_dir, normalize_features)
    return link_split(bundle.train.data, val_fraction, test_fraction, split_seed)  # type: ignore[attr-defined]


@register_dataset("cora_links")
def cora_links(
    data_dir: PathLike | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.10,
    split_seed: int = SPLIT_SEED,
    normalize_features: bool = True,
) -> DataBundle:
    """Cora's 5278 undirected citations split 85/5/10 for link prediction, with negatives for val and test.

    Args:
        val_fraction: share of the edges for validation (default 0.05).
        test_fraction: share of the edges for test (default 0.10).
        split_seed: seed of the edge split and of the fixed negatives (default 0).
        normalize_features: row-normalise the bag-of-words features (default True).
    """
    return planetoid_links("cora", data_dir, val_fraction, test_fraction, split_seed, normalize_features)


@register_dataset("citeseer_links")
def citeseer_links(
    data_dir: PathLike | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.10,
    split_seed: int = SPLIT_SEED,
    normalize_features: bool = True,
) -> DataBundle:
    """CiteSeer's 4552 undirected citations split 85/5/10 for link prediction, with negatives for val and test.

    Args:
        val_fraction: share of the edges for validation (default 0.05).
        test_fraction: share of the edges for test (default 0.10).
        split_seed: seed of the edge split and of the fixed negatives (default 0).
        normalize_features: row-normalise the bag-of-words features (default True).
    """
    return planetoid_links("citeseer", data_dir, val_fraction, test_fraction, split_seed, normalize_features)
