"""TUDataset: MUTAG's real files (188 graphs, 125/63), stratified folds that partition the graphs, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from archzoo.data.tudataset import fold_split, mutag, stratified_folds, tudataset
from archzoo.errors import DataError, UserError


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHZOO_CACHE", str(tmp_path_factory.getbasetemp() / "tu-cache"))
        yield


def _ids(split) -> list[int]:
    return [int(g.graph_id) for g in split.data_list]


def test_mutag_has_188_graphs_of_two_classes_with_one_hot_atoms(mutag_root: Path) -> None:
    b = mutag(data_dir=mutag_root)
    info = b.info
    assert (info["num_graphs"], info["num_node_features"], info["num_classes"]) == (188, 7, 2)
    assert info["num_edge_features"] == 4  # one-hot bond types, for edge-aware models (mpnn_graph)
    assert info["classes"] == ["non-mutagenic", "mutagenic"]
    graphs = [*b.train.data_list, *b.val.data_list, *b.test.data_list]
    assert len(graphs) == 188
    y = torch.cat([g.y for g in graphs])
    assert torch.bincount(y).tolist() == [63, 125]
    x = torch.cat([g.x for g in graphs])
    assert x.shape == (3371, 7) and torch.equal(x.sum(1), torch.ones(3371))  # one atom type per node
    assert x.sum(0).tolist() == [2395, 345, 593, 12, 1, 23, 2]  # C N O F I Cl Br, as the archive's README counts
    assert sum(g.edge_index.size(1) for g in graphs) == 7442
    assert min(g.num_nodes for g in graphs) == 10 and max(g.num_nodes for g in graphs) == 28
    batch = next(iter(b.train.batches(32, shuffle=True)))
    assert batch.num_graphs == 32 and batch.y.shape == (32,) and batch.graph_id.shape == (32,)


def test_mutag_folds_partition_the_graphs_and_are_stratified(mutag_root: Path) -> None:
    tests = []
    for k in range(10):
        b = mutag(data_dir=mutag_root, fold=k)
        tr, va, te = _ids(b.train), _ids(b.val), _ids(b.test)
        assert len(set(tr)) == len(tr) and not set(tr) & set(va) and not set(tr) & set(te) and not set(va) & set(te)
        assert sorted(tr + va + te) == list(range(188))  # no graph in two splits, none left out
        assert len(te) in (18, 19) and len(va) in (18, 19)
        labels = torch.cat([g.y for g in b.test.data_list])
        assert int((labels == 1).sum()) in (12, 13) and int((labels == 0).sum()) in (6, 7)  # 125/10 and 63/10
        if k:
            assert va == tests[-1]  # the previous fold validates
        tests.append(te)
    assert sorted(i for t in tests for i in t) == list(range(188))  # every graph is tested exactly once
    assert _ids(mutag(data_dir=mutag_root, fold=0).val) == tests[9]
    # Xu et al.'s protocol: nine folds train, the test fold validates.
    xu = mutag(data_dir=mutag_root, fold=3, validation="test")
    assert _ids(xu.val) == _ids(xu.test) == tests[3] and len(xu.train) == 188 - len(tests[3])


def test_fold_split_on_hand_built_labels() -> None:
    y = torch.tensor([0] * 10 + [1] * 20)
    parts = stratified_folds(y, 5)
    assert [len(p) for p in parts] == [6] * 5
    assert all(torch.bincount(y[p]).tolist() == [2, 4] for p in parts)
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(30))
    assert all(torch.equal(p, q) for p, q in zip(parts, stratified_folds(y, 5), strict=True))  # a fixed seed
    train, val, test = fold_split(y, 2, folds=5)
    assert torch.equal(test, parts[2]) and torch.equal(val, parts[1]) and len(train) == 18
    with pytest.raises(UserError, match="smallest class has 10 graphs, too few for 11"):
        stratified_folds(y, 11)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"fold": 10}, r"fold must be a whole number in 0\.\.9, got 10"), ({"fold": -1}, "got -1"),
     ({"fold": "1"}, "got '1'"), ({"fold": True}, "got True"), ({"folds": 2}, "at least 3"),
     ({"validation": "none"}, "fold or test")],
)  # fmt: skip
def test_bad_fold_options_are_refused_before_reading(kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=message):
        mutag(data_dir=tmp_path, **kwargs)  # tmp_path holds no files: the options are checked first


def test_missing_files_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="MUTAG not found in .*tudataset/MUTAG/raw"):
        mutag(data_dir=tmp_path)
    with pytest.raises(UserError, match="folder name such as MUTAG"):
        tudataset("../MUTAG", data_dir=tmp_path)


def _write_toy(root: Path, edges: list[tuple[int, int]] | None = None, node_labels: bool = True) -> Path:
    """Six graphs in the TU format: triangles (class 1) and 2-node paths (class -1), 1-based node ids."""
    raw = root / "tudataset" / "TOY" / "raw"
    raw.mkdir(parents=True)
    indicator, labels, a = [], [], []
    node = 1
    for g in range(6):
        n = 3 if g % 2 == 0 else 2
        indicator += [g + 1] * n
        labels.append(1 if n == 3 else -1)
        ring = [(0, 1), (1, 2), (2, 0)] if n == 3 else [(0, 1)]
        for u, v in ring:
            a += [(node + u, node + v), (node + v, node + u)]
        node += n
    (raw / "TOY_A.txt").write_text("".join(f"{u}, {v}\n" for u, v in (edges or a)))
    (raw / "TOY_graph_indicator.txt").write_text("".join(f"{g}\n" for g in indicator))
    (raw / "TOY_graph_labels.txt").write_text("".join(f"{c}\n" for c in labels))
    if node_labels:
        (raw / "TOY_node_labels.txt").write_text("".join(f"{i % 2}\n" for i in range(len(indicator))))
    return root


def test_a_hand_built_tudataset(tmp_path: Path) -> None:
    b = tudataset("TOY", data_dir=_write_toy(tmp_path), fold=1, folds=3)
    assert (b.info["num_graphs"], b.info["num_node_features"], b.info["num_classes"]) == (6, 2, 2)
    assert b.info["num_edge_features"] == 0  # no TOY_edge_labels.txt
    assert (len(b.train), len(b.val), len(b.test)) == (2, 2, 2)
    for split in (b.train, b.val, b.test):
        assert sorted(int(g.y) for g in split.data_list) == [0, 1]  # stratified: one of each class
    tri = next(g for g in b.test.data_list if int(g.y) == 1)
    assert tri.num_nodes == 3 and tri.edge_index.size(1) == 6
    assert not (tmp_path / "tudataset" / "TOY" / "processed").exists()  # read in place: nothing is written


def test_edges_out_of_range_and_missing_node_labels_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="TOY: the TUDataset files in .* could not be read"):
        tudataset("TOY", data_dir=_write_toy(tmp_path / "a", edges=[(1, 2), (2, 1), (99, 1)]), folds=3)
    with pytest.raises(DataError, match="TOY has no node labels or attributes"):
        tudataset("TOY", data_dir=_write_toy(tmp_path / "b", node_labels=False), folds=3)


def test_read_tu_graphs_equals_pygs_tudataset(mutag_root: Path, tmp_path: Path) -> None:
    """The graphs read from the text files alone are PyG's TUDataset's, tensor for tensor (PyG run on a
    private copy this test wrote), for MUTAG and for a toy set whose continuous node attributes are dropped."""
    import shutil
    import warnings

    from torch_geometric.datasets import TUDataset

    from archzoo.data.tudataset import read_tu_graphs

    toy = _write_toy(tmp_path / "toy") / "tudataset" / "TOY" / "raw"
    (toy / "TOY_node_attributes.txt").write_text("".join(f"{i * 0.5}, {-i}\n" for i in range(15)))
    for name, raw in (("MUTAG", mutag_root / "tudataset" / "MUTAG" / "raw"), ("TOY", toy)):
        copy = tmp_path / "pyg" / name
        shutil.copytree(raw, copy / name / "raw")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = TUDataset(str(copy), name)
        ours = read_tu_graphs(raw, name)
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref, strict=True):
            assert sorted(a.keys()) == sorted(b.keys())
            assert all(torch.equal(a[k], b[k]) for k in b.keys())
        assert ours[0].x.shape[1] == (7 if name == "MUTAG" else 2)  # labels one-hot, attributes left out
