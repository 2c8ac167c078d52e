"""Graph datasets: the karate club and Cora as one graph with fixed masks, synthetic shapes as graph batches, bad graphs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from archzoo.data.graphs import check_graph, planetoid
from archzoo.errors import DataError, UserError
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


# ----------------------------------------------------------------------------- bad graphs and Planetoid


def _planetoid_root() -> Path:
    root = Path(os.environ.get("ARCHZOO_DATA", ""))
    if not (root / "planetoid" / "Cora" / "raw" / "ind.cora.graph").is_file():
        pytest.skip("ARCHZOO_DATA has no planetoid/Cora (see ../shared/data/MANIFEST.md)")
    return root


@pytest.mark.parametrize(
    ("edges", "n", "message"),
    [
        ([[0, 1], [1, 5]], 3, "1 edges name nodes outside 0..2"),
        ([[0, -1], [1, 0]], 3, "outside 0..2"),
        ([[0, 1, 2]], 3, r"must be a \(2, E\) tensor"),
        ([[], []], 3, "3 nodes and no edges"),
        ([[], []], 0, "empty"),
    ],
)
def test_check_graph_refuses_bad_graphs_in_one_sentence(edges: list, n: int, message: str) -> None:
    from torch_geometric.data import Data

    data = Data(edge_index=torch.tensor(edges, dtype=torch.long), num_nodes=n)
    with pytest.raises(DataError, match=message):
        check_graph(data, "toy")


def test_check_graph_refuses_features_of_the_wrong_length_and_float_ids() -> None:
    from torch_geometric.data import Data

    ok = torch.tensor([[0, 1], [1, 0]])
    check_graph(Data(x=torch.ones(2, 3), edge_index=ok), "toy")
    with pytest.raises(DataError, match="x has 2 rows for 4 nodes"):
        check_graph(Data(x=torch.ones(2, 3), edge_index=ok, num_nodes=4), "toy")
    with pytest.raises(DataError, match="integer node ids"):
        check_graph(Data(edge_index=ok.float(), num_nodes=2), "toy")


def test_planetoid_missing_raw_file_is_one_sentence_naming_the_folder(tmp_path: Path) -> None:
    raw = tmp_path / "planetoid" / "Cora" / "raw"
    raw.mkdir(parents=True)
    (raw / "ind.cora.x").write_bytes(b"")
    with pytest.raises(DataError) as e:
        create_dataset("cora", data_dir=tmp_path)
    msg = str(e.value)
    assert str(raw) in msg and "ind.cora.graph" in msg and "\n" not in msg
    with pytest.raises(UserError, match="choose one of cora, citeseer"):
        planetoid("pubmed", data_dir=tmp_path)


def test_cora_public_split_read_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _planetoid_root()
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    b = create_dataset("cora", data_dir=root)
    assert b.info["num_node_features"] == 1433 and b.info["num_classes"] == 7
    assert b.info["num_nodes"] == 2708 and b.info["num_edges"] == 10556
    assert (len(b.train), len(b.val), len(b.test)) == (140, 500, 1000)
    data = next(iter(b.train.batches(1)))
    assert torch.equal(data.mask.nonzero().flatten(), torch.arange(140))  # the first 140 nodes
    assert torch.bincount(data.y[data.mask]).tolist() == [20] * 7
    rows = data.x.sum(1)
    torch.testing.assert_close(rows[rows > 0], torch.ones(int((rows > 0).sum())))  # row-normalised
    # The raw files are read in place: nothing is written, to the cache or beside them (no processed/ file).
    assert not (tmp_path / "cache" / "planetoid").exists()
    assert not (root / "planetoid" / "Cora" / "processed").exists()


@pytest.mark.parametrize("name", ["Cora", "CiteSeer"])
def test_read_planetoid_equals_pygs_planetoid_tensor_for_tensor(name: str, tmp_path: Path) -> None:
    """archzoo's restricted reader builds the graph PyG's Planetoid builds from the same raw files
    (PyG run here on a private copy that this test wrote, the only place its unrestricted reader runs)."""
    import shutil
    import warnings

    from torch_geometric.datasets import Planetoid

    from archzoo.data.graphs import read_planetoid

    raw = _planetoid_root() / "planetoid" / name / "raw"
    shutil.copytree(raw, tmp_path / name / "raw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Planetoid(str(tmp_path), name, split="public")[0]
    ours = read_planetoid(raw, name)
    assert sorted(ours.keys()) == sorted(ref.keys())
    for k in ref.keys():
        assert ours[k].dtype == ref[k].dtype and torch.equal(ours[k], ref[k]), k
