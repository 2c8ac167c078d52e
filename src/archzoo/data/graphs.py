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
  validation, 1000 test nodes), read from ``<data root>/planetoid/<Name>/raw``. The raw
  files are Python 2 pickles (scipy CSR matrices, numpy arrays, a ``defaultdict`` of
  neighbour lists), the one kind of pickle archzoo reads: :func:`read_planetoid` loads
  them through :class:`PlanetoidUnpickler`, which rebuilds those types and nothing else
  (a CSR matrix as a plain record of its arrays: no scipy code runs), and builds the same
  graph as PyG's :class:`~torch_geometric.datasets.Planetoid` (a test checks it tensor for
  tensor), without PyG's ``processed/`` file, which PyG would unpickle without the
  restriction when its safe load fails. Features are row-normalised (``NormalizeFeatures``)
  as in Kipf & Welling (2017).

:func:`check_graph` refuses, in one sentence, a graph with no nodes or edges, edge
indices out of range, or features and labels whose rows do not match the nodes.

``networkx`` and ``torch_geometric`` are imported when a dataset is built.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archzoo.data.cifar import RestrictedUnpickler
from archzoo.data.root import PathLike, find_dataset_dir
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


class _CSRRecord:
    """What a pickled ``scipy.sparse.csr_matrix`` becomes: its attributes (``data``, ``indices``, ``indptr``,
    ``_shape``) set by the pickle's BUILD, and no methods that could run."""

    def dense(self, path: Path) -> np.ndarray:
        d = self.__dict__
        try:
            data, indices, indptr = (np.asarray(d[k]) for k in ("data", "indices", "indptr"))
            rows, cols = (int(v) for v in d["_shape"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path} does not hold a CSR matrix (data, indices, indptr, _shape).") from None
        if indptr.shape != (rows + 1,) or indices.shape != data.shape or int(indptr[-1]) != data.size:
            raise DataError(f"{path}: the CSR matrix's arrays do not fit its shape {rows}x{cols}.")
        if data.size and (indices.min() < 0 or indices.max() >= cols or (np.diff(indptr) < 0).any()):
            raise DataError(f"{path}: the CSR matrix has column indices outside 0..{cols - 1}.")
        out = np.zeros((rows, cols), dtype=data.dtype)
        row_of = np.repeat(np.arange(rows), np.diff(indptr))  # the row of each stored value
        out[row_of, indices] = data  # no duplicates in these files; a duplicate would keep the last
        return out


def _neighbour_lists(factory: Any) -> collections.defaultdict[Any, Any]:
    """``collections.defaultdict(list)``, the graph file's one call; any other factory is refused."""
    if factory is not list:
        raise pickle.UnpicklingError(f"refused defaultdict with factory {factory!r}")
    return collections.defaultdict(list)


class PlanetoidUnpickler(RestrictedUnpickler):
    """:class:`~archzoo.data.cifar.RestrictedUnpickler` plus what the Planetoid files need: a stand-in for
    ``scipy.sparse.csr_matrix`` (a plain record), ``defaultdict(list)`` and ``list``. Python 2 strings load as
    latin-1 text, as numpy's own advice for Python 2 pickles says."""

    ALLOWED = {
        **RestrictedUnpickler.ALLOWED,
        ("scipy.sparse.csr", "csr_matrix"): _CSRRecord,
        ("scipy.sparse._csr", "csr_matrix"): _CSRRecord,
        ("collections", "defaultdict"): _neighbour_lists,
        ("__builtin__", "list"): list,
        ("builtins", "list"): list,
    }

    def __init__(self, file: Any) -> None:
        pickle.Unpickler.__init__(self, file, encoding="latin1")


def _planetoid_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            obj = PlanetoidUnpickler(f).load()
    except Exception as e:  # a malformed or refused pickle fails in many ways; all of them are the file's fault
        raise DataError(f"{path} is not a Planetoid file archzoo reads ({type(e).__name__}: {e}).") from None
    return obj


def _planetoid_matrix(path: Path) -> torch.Tensor:
    obj = _planetoid_pickle(path)
    if isinstance(obj, _CSRRecord):
        obj = obj.dense(path)
    if not isinstance(obj, np.ndarray) or obj.ndim != 2 or obj.dtype.kind not in "fiub":
        raise DataError(f"{path} does not hold a 2-d numeric matrix.")
    return torch.from_numpy(np.ascontiguousarray(obj)).float()


def read_planetoid(raw: PathLike, name: str) -> Any:
    """The Planetoid graph ``name`` (``cora``, ``citeseer``) of the raw files in ``raw``, public split, as a PyG ``Data``.

    Nodes are ordered as ``allx`` then the test nodes by id; the test rows (given in
    ``test.index`` order in ``tx``/``ty``) move to their ids. CiteSeer has ids in the test
    range with no row in ``tx`` (isolated papers): they get zero features and label 0,
    as PyG and the GCN code give them. Edges are the neighbour lists without self loops
    and duplicates, ordered by target then source (PyG's ``coalesce(sort_by_row=False)``).
    Masks: train is the first ``len(y)`` nodes, val the next 500, test the ids of ``test.index``.
    """
    from torch_geometric.data import Data

    raw = Path(raw)
    key = name.lower()

    def f(part: str) -> Path:
        return raw / f"ind.{key}.{part}"

    x, tx, allx, y, ty, ally = (_planetoid_matrix(f(p)) for p in ("x", "tx", "allx", "y", "ty", "ally"))
    graph = _planetoid_pickle(f("graph"))
    if not isinstance(graph, dict):
        raise DataError(f"{f('graph')} does not hold a dict of neighbour lists.")
    try:
        test_index = torch.tensor([int(t) for t in f("test.index").read_text().split()], dtype=torch.long)
    except ValueError:
        raise DataError(f"{f('test.index')} must hold one node id per line.") from None
    if not len(test_index) or len(tx) != len(test_index) or len(ty) != len(test_index):
        raise DataError(f"{raw}: tx and ty need one row per id of test.index ({len(test_index)}).")
    lo, hi = int(test_index.min()), int(test_index.max())
    if lo != len(allx) or len(ally) != len(allx):
        raise DataError(f"{raw}: the test ids must start after the {len(allx)} rows of allx and ally.")
    ordered = test_index.sort().values
    # Rows for every id in lo..hi; ids missing from test.index (CiteSeer's isolated papers) stay zero.
    tx_all, ty_all = tx.new_zeros(hi - lo + 1, tx.shape[1]), ty.new_zeros(hi - lo + 1, ty.shape[1])
    tx_all[ordered - lo], ty_all[ordered - lo] = tx, ty
    feats = torch.cat([allx, tx_all])  # (N, F)
    feats[test_index] = feats[ordered]
    labels = torch.cat([ally, ty_all]).max(1).indices  # (N,) one-hot rows to class ids
    labels[test_index] = labels[ordered]
    n = len(labels)
    src, dst = [], []
    for node, neighbours in graph.items():
        if not isinstance(neighbours, list):
            raise DataError(f"{f('graph')}: node {node!r} has no list of neighbours.")
        src += [int(node)] * len(neighbours)
        dst += [int(v) for v in neighbours]
    ei = torch.tensor([src, dst], dtype=torch.long)  # (2, E) with duplicates and self loops
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise DataError(f"{f('graph')}: an edge names a node outside 0..{n - 1}.")
    ei = ei[:, ei[0] != ei[1]]
    order = torch.unique(ei[1] * n + ei[0])  # sorted and deduplicated by (target, source)
    ei = torch.stack([order % n, order // n])
    masks = {k: torch.zeros(n, dtype=torch.bool) for k in ("train_mask", "val_mask", "test_mask")}
    masks["train_mask"][: len(y)] = True
    masks["val_mask"][len(y) : len(y) + 500] = True
    masks["test_mask"][test_index] = True
    return Data(x=feats, edge_index=ei, y=labels, **masks)


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
    from torch_geometric.transforms import NormalizeFeatures

    try:
        data = read_planetoid(raw, key)
    except (OSError, IndexError, RuntimeError) as e:
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
