"""Graph classification benchmarks of the TU Dortmund collection (TUDataset), with stratified k-fold splits.

* ``mutag``: 188 nitroaromatic compounds (Debnath et al. 1991), each a graph of 10–28
  atoms, labelled mutagenic on *Salmonella typhimurium* (125) or not (63). Node features
  are the one-hot atom type (7: C, N, O, F, I, Cl, Br); the bond types are kept as
  ``edge_attr`` (4, one-hot) for models that read them. Not the RDF graph of the same
  name in ``entities/``.
* ``tudataset``: any TUDataset by its folder name (``name: MUTAG``, ``PROTEINS``, ...).

Each graph carries ``graph_id`` :math:`(1,)`, its index in the files (a batch's
``graph_id`` :math:`(B,)` names its graphs), so a split's graphs can be traced and compared.

The files are ``<data root>/tudataset/<Name>/raw/<Name>_*.txt`` (the TU archive's
members; see ``../shared/data/MANIFEST.md``), parsed in place by PyG's text reader
``read_tu_data`` into the same graphs as :class:`~torch_geometric.datasets.TUDataset`
gives (node and edge attributes left out, as its defaults do; a test checks them tensor
for tensor). Nothing is written and no ``processed/`` file is read: PyG loads that file
with ``torch.load`` and, where the safe load fails, without its restriction, so a file
planted there would run code. Nothing is downloaded.

**Splits: 10-fold cross-validation.** The graphs are cut into ``folds`` stratified folds
(scikit-learn's ``StratifiedKFold``, shuffled with the fixed seed 0, the seed of Xu et
al.'s code); ``fold: k`` tests on fold :math:`k`. Validation (``validation``):

* ``fold`` (default): fold :math:`k - 1` (mod ``folds``) validates and the other
  ``folds - 2`` train, as PyG's graph-kernel benchmark (``benchmark/kernel``) splits
  them: the epoch is chosen on graphs that are neither trained on nor tested, and each
  graph is tested exactly once over the ``folds`` runs.
* ``test``: the other ``folds - 1`` folds train and the test fold doubles as the
  validation split. This is Xu et al.'s protocol, which reports the test-fold accuracy
  curve averaged over the folds at its best epoch; it selects on the test graphs and is
  there only to reproduce that figure (``benchmarks/tu_quality.py`` reports both).

The splits do not change with ``train.seed``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from archzoo.data.graphs import DATA_SEED, check_graph
from archzoo.data.root import PathLike, find_dataset_dir
from archzoo.data.splits import DataBundle, GraphBatches
from archzoo.errors import DataError, UserError
from archzoo.registry import register_dataset

#: The ways of choosing the validation graphs of a fold (see the module docstring).
VALIDATION = ("fold", "test")
#: Class names where the TU archive's README gives them (PyG maps the labels to 0..C-1 in sorted order).
CLASSES = {"MUTAG": ["non-mutagenic", "mutagenic"]}  # labels -1 and 1


def read_tu_graphs(raw: Path, name: str) -> list[Any]:
    """The graphs of ``raw/<name>_*.txt`` as PyG ``Data``, as ``TUDataset(root, name)`` gives them, from text alone.

    ``x`` keeps the one-hot node labels and ``edge_attr`` the one-hot edge labels: the
    continuous attributes (the first columns ``read_tu_data`` puts there) are dropped, as
    TUDataset's ``use_node_attr=False`` and ``use_edge_attr=False`` do.
    """
    from torch_geometric.data import InMemoryDataset
    from torch_geometric.io import read_tu_data

    data, slices, sizes = read_tu_data(str(raw), name)
    if data.x is not None:
        data.x = data.x[:, sizes["num_node_attributes"] :]
    if data.edge_attr is not None:
        data.edge_attr = data.edge_attr[:, sizes["num_edge_attributes"] :]

    class Graphs(InMemoryDataset):  # no root: nothing is processed, saved or loaded
        def __init__(self) -> None:
            super().__init__(None)
            self._data, self.slices = data, slices

    ds = Graphs()
    return [ds[i] for i in range(len(ds))]


def stratified_folds(y: torch.Tensor, folds: int, seed: int = DATA_SEED) -> list[torch.Tensor]:
    """The graph indices of each of ``folds`` stratified folds (shuffled with ``seed``), each sorted.

    Raises:
        UserError: a class has fewer graphs than there are folds.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    counts = torch.bincount(y)
    if int(counts[counts > 0].min()) < folds:
        raise UserError(
            f"The smallest class has {int(counts[counts > 0].min())} graphs, too few for {folds} stratified folds."
        )
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    labels = y.numpy()
    return [torch.from_numpy(np.sort(test)) for _, test in skf.split(np.zeros(len(labels)), labels)]


def _check_fold(fold: Any, folds: Any, validation: Any) -> None:
    """Refuse a fold, fold count or validation choice that is not one, in one sentence."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 3:
        raise UserError(f"data.args.folds must be a whole number of at least 3, got {folds!r}.")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise UserError(f"data.args.fold must be a whole number in 0..{folds - 1}, got {fold!r}.")
    if validation not in VALIDATION:
        raise UserError(f"data.args.validation must be fold or test, got {validation!r}.")


def fold_split(
    y: torch.Tensor, fold: int, folds: int = 10, validation: str = "fold", seed: int = DATA_SEED
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``(train, val, test)`` graph indices of cross-validation fold ``fold`` (see the module docstring)."""
    _check_fold(fold, folds, validation)
    parts = stratified_folds(y, folds, seed)
    test = parts[fold]
    if validation == "test":
        val = test
        train = torch.cat([p for i, p in enumerate(parts) if i != fold])
    else:
        v = (fold - 1) % folds
        val = parts[v]
        train = torch.cat([p for i, p in enumerate(parts) if i not in (fold, v)])
    return train.sort().values, val, test


@register_dataset("tudataset")
def tudataset(
    name: str = "MUTAG",
    data_dir: PathLike | None = None,
    fold: int = 0,
    folds: int = 10,
    validation: str = "fold",
) -> DataBundle:
    """A TUDataset for graph classification, split for fold ``fold`` of stratified ``folds``-fold cross-validation.

    Args:
        name: the dataset's folder name under ``<data root>/tudataset`` (default ``MUTAG``; case matters).
        data_dir: the data root (see :func:`archzoo.data.root.data_root`).
        fold: the test fold, ``0 .. folds - 1`` (default 0).
        folds: number of folds (default 10).
        validation: ``fold`` (the previous fold validates, default) or ``test`` (the test
            fold validates too: Xu et al.'s protocol, for reproducing their figure only).
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name):
        raise UserError(f"data.args.name must be a TUDataset folder name such as MUTAG, got {name!r}.")
    _check_fold(fold, folds, validation)  # before the files are read
    raw = find_dataset_dir(
        name,
        data_dir,
        subdirs=[f"tudataset/{name}/raw"],
        required=[f"{name}_A.txt", f"{name}_graph_indicator.txt", f"{name}_graph_labels.txt"],
        how_to_get=f"unpack {name}.zip of the TU Dortmund collection (https://chrsmrrs.github.io/datasets/)",
    )
    from torch_geometric.data import Data

    try:
        graphs = read_tu_graphs(raw, name)
    except (OSError, EOFError, ValueError, IndexError, KeyError, RuntimeError) as e:
        raise DataError(f"{name}: the TUDataset files in {raw} could not be read ({type(e).__name__}: {e}).") from None
    if not graphs:
        raise DataError(f"{name}: the TUDataset files in {raw} hold no graphs.")
    if graphs[0].x is None:
        raise DataError(f"{name} has no node labels or attributes; graph classifiers here need node features.")
    for i, g in enumerate(graphs):
        # y is one label per graph, not per node: check the nodes, edges and features only.
        check_graph(
            Data(x=g.x, edge_index=g.edge_index, num_nodes=g.num_nodes), f"{name} graph {i}", require_edges=False
        )
        g.graph_id = torch.tensor([i])  # its place in the files: batched to (B,), it names each graph of a batch
    y = torch.cat([g.y for g in graphs])  # (G,)
    train, val, test = fold_split(y, fold, folds, validation)
    num_classes = int(y.max()) + 1
    info: dict[str, Any] = {
        "num_node_features": int(graphs[0].x.size(1)),
        # MUTAG's 4 one-hot bond types; 0 for a dataset without edge labels or attributes.
        "num_edge_features": int(graphs[0].edge_attr.size(1)) if graphs[0].edge_attr is not None else 0,
        "num_classes": num_classes,
        "classes": CLASSES.get(name, [str(c) for c in range(num_classes)]),
        "num_graphs": len(graphs),
        "fold": fold,
        "folds": folds,
        "validation": validation,
        "kind": "graphs",
    }
    return DataBundle(*(GraphBatches([graphs[i] for i in s.tolist()]) for s in (train, val, test)), info=info)


@register_dataset("mutag")
def mutag(data_dir: PathLike | None = None, fold: int = 0, folds: int = 10, validation: str = "fold") -> DataBundle:
    """TUDataset MUTAG: 188 molecules (125 mutagenic, 63 not), one-hot atom types, stratified 10-fold CV.

    Args:
        fold: the test fold, 0..9 (default 0); fold ``fold - 1`` validates, the other 8 train.
        folds: number of folds (default 10).
        validation: ``fold`` (default) or ``test`` (the test fold validates: Xu et al.'s protocol).
    """
    return tudataset("MUTAG", data_dir, fold, folds, validation)
