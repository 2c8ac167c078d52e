"""Graph datasets: Zachary's karate club and synthetic shapes (embedded), Cora and CiteSeer (Planetoid files).

* ``karate``: the 34 members of a university karate club and their 78
  friendships (Zachary 1977, from ``networkx.karate_club_graph()``); each node is
  labelled by the club it joined after the split ('Mr. Hi' or 'Officer'). Node
  features are the one-hot identity, so a GCN can only learn from the graph's
  structure: the semi-supervised setting of Kipf & Welling (2017) in miniature.
* ``graph_shapes``: cycles, paths and stars of 5–12 nodes, one class each, with
  the one-hot node degree as feature; a graph classifier must pool over nodes.

* ``cora``, ``citeseer`` (one builder, :func:`planetoid`): the citation graphs of
  Yang et al. (2016) with their public split (20 labelled nodes per class, 500
  validation, 1000 test nodes), read from ``<data root>/planetoid/<Name>/raw`` by PyG's
  :class:`~torch_geometric.datasets.Planetoid`. The raw files are Python pickles: they
  are read only by PyG's reader, only from the data root, and only after being copied
  into archzoo's writable cache (PyG writes its ``processed/`` folder beside ``raw/``,
  and the data root may be read-only). Features are row-normalised (``NormalizeFeatures``)
  as in Kipf & Welling (2017).

:func:`check_graph` refuses, in one sentence, a graph with no nodes or edges, edge
indices out of range, or features and labels whose rows do not match the nodes.

``networkx`` and ``torch_geometric`` are imported when a dataset is built.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import torch

from archzoo.data.root import PathLike, cache_dir, find_dataset_dir
from archzoo.data.splits import DataBundle, FullGraph, GraphBatches
from archzoo.errors import DataError, UserError
from archzoo.registry import register_dataset

#: The seed of the fixed masks and of the generated graphs: they do not change with the run's seed.
DATA_SEED = 0


def _undirected(edges: list[tuple[int, int]]) -> torch.Tensor:
    """``edge_index`` :math:`(2, 2E)` holding both directions of each edge."""
    e = torch.tensor(edges, dtype=torch.long).T  # (2, E)
    return torch.cat([e, e.flip(0)], 1)


def check_graph(data: Any, name: str, *, require_edges: bool = True) -> None:
    """Refuse a graph that a model cannot run on, in one sentence naming the dataset.

    Checks: at least one node (and one edge, unless ``require_edges`` is false);
    ``edge_index`` of shape ``(2, E)`` with integer node ids in ``0 .. N-1``; ``x`` and
    ``y`` (where present) with one row per node.

    Raises:
        DataError: the first problem found.
    """
    n = data.num_nodes
    if not n:
        raise DataError(f"{name}: the graph is empty (it has no nodes).")
    ei = getattr(data, "edge_index", None)
    if ei is None or not isinstance(ei, torch.Tensor) or ei.dim() != 2 or ei.size(0) != 2:
        shape = None if ei is None else tuple(getattr(ei, "shape", ()))
        raise DataError(f"{name}: edge_index must be a (2, E) tensor of node ids, got shape {shape}.")
    if ei.dtype.is_floating_point or ei.dtype == torch.bool:
        raise DataError(f"{name}: edge_index must hold integer node ids, not {ei.dtype}.")
    if ei.size(1) == 0:
        if require_edges:
            raise DataError(f"{name}: the graph has {n} nodes and no edges.")
    else:
        lo, hi = int(ei.min()), int(ei.max())
        if lo < 0 or hi >= n:
            bad = int(((ei < 0) | (ei >= n)).any(0).sum())
            raise DataError(
                f"{name}: {bad} edges name nodes outside 0..{n - 1} (edge_index spans {lo}..{hi} for {n} nodes)."
            )
    for attr in ("x", "y"):
        t = getattr(data, attr, None)
        if isinstance(t, torch.Tensor) and t.size(0) != n:
            raise DataError(f"{name}: {attr} has {t.size(0)} rows for {n} nodes.")


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
    check_graph(data, "karate")
    info: dict[str, Any] = {
        "num_node_features": n,
        "num_classes": len(clubs),
        "classes": clubs,
        "num_nodes": n,
        "kind": "graph_nodes",
    }
    return DataBundle(*FullGraph.splits(data), info=info)


# ----------------------------------------------------------------------------- Planetoid

#: The folder names PyG uses (``root/<Name>/raw``) for the names a recipe may give.
PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer"}
PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def raw_copy(kind: str, name: str, raw: Path, files: list[str]) -> Path:
    """A writable copy of ``files`` in ``raw`` laid out as ``root/<name>/raw``, keyed by their SHA-256; its ``root``.

    PyG's dataset classes write ``processed/`` beside ``raw/``, and the data root is read-only;
    the copy lives under the cache (``cache_dir(kind)``), one folder per content.
    """
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + (raw / f).read_bytes())
    root = cache_dir(kind) / h.hexdigest()[:16]
    dest = root / name / "raw"
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        target = dest / f
        if not target.is_file() or target.stat().st_size != (raw / f).stat().st_size:
            tmp = target.with_suffix(target.suffix + ".tmp")
            shutil.copyfile(raw / f, tmp)
            tmp.replace(target)  # atomic: another process never sees half a file
    return root


def _planetoid_cache(name: str, raw: Path) -> Path:
    """A writable copy of ``raw`` for PyG's ``Planetoid`` (:func:`raw_copy`); its ``root``."""
    return raw_copy("planetoid", name, raw, [f"ind.{name.lower()}.{f}" for f in PLANETOID_FILES])


def planetoid(name: str, data_dir: PathLike | None = None, normalize_features: bool = True) -> DataBundle:
    """A Planetoid citation graph with its public split, as one :class:`~archzoo.data.splits.FullGraph`.

    Args:
        name: ``cora`` or ``citeseer`` (any case).
        data_dir: the data root (see :func:`archzoo.data.root.data_root`); the files are
            ``<root>/planetoid/<Name>/raw/ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``.
        normalize_features: divide each node's bag-of-words by its sum (default True).
    """
    key = name.lower()
    if key not in PLANETOID_NAMES:
        raise UserError(f"Unknown Planetoid graph '{name}'; choose one of {', '.join(PLANETOID_NAMES)}.")
    pyg_name = PLANETOID_NAMES[key]
    raw = find_dataset_dir(
        pyg_name,
        data_dir,
        subdirs=[f"planetoid/{pyg_name}/raw"],
        required=[f"ind.{key}.{f}" for f in PLANETOID_FILES],
        how_to_get="copy them from the Planetoid repository (kimiyoung/planetoid, data/)",
    )
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    try:
        ds = Planetoid(str(_planetoid_cache(pyg_name, raw)), pyg_name, split="public")
        data = ds[0]
    except (OSError, EOFError, ValueError, IndexError, KeyError, RuntimeError) as e:
        raise DataError(
            f"{pyg_name}: the Planetoid files in {raw} could not be read ({type(e).__name__}: {e})."
        ) from None
    check_graph(data, pyg_name)
    if normalize_features:
        data = NormalizeFeatures()(data)
    nnz = int((data.x != 0).sum())
    info: dict[str, Any] = {
        "num_node_features": int(data.num_node_features),
        "num_classes": int(data.y.max()) + 1,
        "num_nodes": int(data.num_nodes),
        "num_edges": int(data.edge_index.size(1)),
        "feature_nonzeros": nnz,
        "kind": "graph_nodes",
    }
    return DataBundle(*FullGraph.splits(data), info=info)


@register_dataset("cora")
def cora(data_dir: PathLike | None = None, normalize_features: bool = True) -> DataBundle:
    """Cora (Planetoid public split): 2708 papers, 10,556 directed citation links, 1433 words, 7 topics.

    140 training nodes (20 per class), 500 validation, 1000 test.

    Args:
        normalize_features: row-normalise the bag-of-words features (default True).
    """
    return planetoid("cora", data_dir, normalize_features)


@register_dataset("citeseer")
def citeseer(data_dir: PathLike | None = None, normalize_features: bool = True) -> DataBundle:
    """CiteSeer (Planetoid public split): 3327 papers, 9104 directed links, 3703 words, 6 topics.

    120 training nodes (20 per class), 500 validation, 1000 test; PyG gives the 15 test
    ids without features zero rows, as the GCN code does.

    Args:
        normalize_features: row-normalise the bag-of-words features (default True).
    """
    return planetoid("citeseer", data_dir, normalize_features)


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
