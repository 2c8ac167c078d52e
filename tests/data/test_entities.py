"""Entity graphs: a hand-built RDF file read exactly; AIFB and MUTAG counts; ids that do not follow PYTHONHASHSEED."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from archzoo.data.entities import UNLABELLED, entities, parse_entities
from archzoo.errors import DataError, UserError
from archzoo.registry import create_dataset

SRC = Path(__file__).resolve().parents[2] / "src"

P = "http://ex.org/p/"
E = "http://ex.org/e/"
TRIPLES = f"""\
<{E}alice> <{P}worksAt> <{E}lab1> .
<{E}bob> <{P}worksAt> <{E}lab2> .
<{E}carol> <{P}worksAt> <{E}lab1> .
<{E}alice> <{P}name> "http://ex.org/e/bob" .
<{E}bob> <{P}knows> _:x .
_:x <{P}name> "Dan"@en .
"""
HEADER = {"complete": "id\tperson\tlabel_affiliation", "split": "person\tid\tlabel_affiliation"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))


def _write_raw(root: Path, triples: str = TRIPLES, train: str | None = None, header: str | None = None) -> Path:
    raw = root / "entities" / "aifb" / "raw"
    raw.mkdir(parents=True)
    with gzip.open(raw / "aifb_stripped.nt.gz", "wt") as f:
        f.write(triples)
    rows = [("alice", "g1"), ("bob", "g2"), ("carol", "g1")]
    complete = [HEADER["complete"]] + [f"{i}\t{E}{p}\t{g}" for i, (p, g) in enumerate(rows)]
    (raw / "completeDataset.tsv").write_text("\r\n".join(complete))
    head = header or HEADER["split"]
    (raw / "trainingSet.tsv").write_text(train or f"{head}\r\n{E}alice\t0\tg1\r\n{E}bob\t1\tg2\r\n")
    (raw / "testSet.tsv").write_text(f"{HEADER['split']}\r\n{E}carol\t2\tg1\r\n")
    return raw


def test_a_hand_built_graph_is_read_into_sorted_ids(tmp_path: Path) -> None:
    raw = _write_raw(tmp_path)
    g = parse_entities(raw, "aifb")
    # 8 terms: 5 URIs, one blank node (skolemised), and 2 literals; the literal that reads
    # like bob's URI is a node of its own.
    assert g["num_nodes"] == 8 and g["num_triples"] == 6
    assert g["relations"] == [f"{P}worksAt", f"{P}name", f"{P}knows"]  # by frequency 3, 2, 1
    assert g["num_relations"] == 6 and g["classes"] == ["g1", "g2"]
    ei, et = g["edge_index"], g["edge_type"]
    assert ei.shape == (2, 12) and et.tolist().count(0) == 3 and et.tolist().count(1) == 3
    # Sorted by (kind, text): URIs alice, bob, carol, lab1, lab2; the blank node; literals.
    alice, bob, carol, lab1, lab2 = range(5)
    edges = set(zip(ei[0].tolist(), ei[1].tolist(), et.tolist(), strict=True))
    for s, o in ((alice, lab1), (bob, lab2), (carol, lab1)):
        assert (s, o, 0) in edges and (o, s, 1) in edges  # worksAt and its inverse
    assert (bob, 5, 4) in edges and (5, bob, 5) in edges  # bob knows the blank node
    keys = ei[0] * 8 * 6 + ei[1] * 6 + et
    assert torch.equal(keys, keys.sort().values)  # edges in (source, target, relation) order
    assert g["train_idx"].tolist() == [alice, bob] and g["train_y"].tolist() == [0, 1]
    assert g["test_idx"].tolist() == [carol] and g["test_y"].tolist() == [0]


def test_the_bundle_has_masks_labels_and_a_validation_split(tmp_path: Path) -> None:
    _write_raw(tmp_path)
    b = entities("aifb", tmp_path, val_fraction=0.0)
    data = next(iter(b.train.batches(1)))
    assert b.info["num_nodes"] == 8 and b.info["num_relations"] == 6 and b.info["num_classes"] == 2
    assert data.y.tolist() == [0, 1, 0] + [UNLABELLED] * 5
    assert data.train_mask.tolist()[:3] == [True, True, False] and torch.equal(data.val_mask, data.train_mask)
    assert data.test_mask.nonzero().flatten().tolist() == [2]
    with pytest.raises(UserError, match="leaves class 0 no training nodes"):
        entities("aifb", tmp_path, val_fraction=0.9)  # each class has one training node


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"header": "person\tid\tlabel"}, DataError, "has no column 'label_affiliation'"),
        ({"train": f"{HEADER['split']}\r\n{E}zoe\t0\tg1\r\n"}, DataError, "1 labelled entities are not in the graph"),
        ({"train": f"{HEADER['split']}\r\n{E}alice\t0\tg9\r\n"}, DataError, "label 'g9' is not among the classes"),
        ({"triples": "this is not n-triples\n"}, DataError, "could not be parsed"),
        ({"triples": ""}, DataError, "holds no triples"),
    ],
)
def test_bad_files_are_one_sentence(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    _write_raw(tmp_path, **kwargs)
    with pytest.raises(error, match=message):
        entities("aifb", tmp_path)


def test_unknown_names_and_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Unknown entity graph 'bgs'"):
        entities("bgs", tmp_path)
    with pytest.raises(UserError, match=r"val_fraction must be in \[0, 1\)"):
        entities("aifb", tmp_path, val_fraction=1.0)
    with pytest.raises(DataError, match="AIFB"):
        entities("aifb", tmp_path)  # no files there


# ----------------------------------------------------------------------------- the real files


def test_aifb_counts_and_the_official_split(data_root: Path) -> None:
    b = create_dataset("aifb", data_dir=data_root)
    info = b.info
    assert (info["num_nodes"], info["num_edges"], info["num_relations"], info["num_classes"]) == (8285, 58086, 90, 4)
    assert info["num_triples"] == 29043 and info["split_sizes"] == [112, 28, 36]
    data = next(iter(b.train.batches(1)))
    y = data.y
    train_all = data.train_mask | data.val_mask
    assert torch.bincount(y[train_all]).tolist() == [58, 22, 48, 12]  # id1..id4instance
    assert torch.bincount(y[data.test_mask]).tolist() == [15, 6, 12, 3]
    assert torch.bincount(y[data.val_mask]).tolist() == [12, 4, 10, 2]  # 20% of each class
    assert not (data.train_mask & data.val_mask).any() and not (train_all & data.test_mask).any()
    assert int((y != UNLABELLED).sum()) == 176
    # Each triple in both directions: relation 2p and its inverse 2p + 1 are equally frequent.
    counts = torch.bincount(data.edge_type, minlength=90)
    assert torch.equal(counts[0::2], counts[1::2]) and (counts[0::2][:-1] >= counts[0::2][1:]).all()


@pytest.mark.slow
def test_mutag_counts_and_the_official_split(data_root: Path) -> None:
    b = create_dataset("mutag_entities", data_dir=data_root)
    info = b.info
    assert (info["num_nodes"], info["num_edges"], info["num_relations"], info["num_classes"]) == (23644, 148454, 46, 2)
    assert info["split_sizes"] == [218, 54, 68] and info["classes"] == ["0", "1"]
    data = next(iter(b.test.batches(1)))
    assert torch.bincount(data.y[data.train_mask | data.val_mask]).tolist() == [166, 106]
    assert torch.bincount(data.y[data.test_mask]).tolist() == [45, 23]


_DIGEST = """
import hashlib, sys, torch
from pathlib import Path
from archzoo.data.entities import parse_entities
g = parse_entities(Path(sys.argv[1]), "aifb")
h = hashlib.sha256()
for k in ("edge_index", "edge_type", "train_idx", "train_y", "test_idx", "test_y"):
    h.update(g[k].numpy().tobytes())
h.update("|".join(g["classes"] + g["relations"]).encode())
print(h.hexdigest())
"""


def _digests(raw: Path, cache: Path) -> list[str]:
    """The digest of the parsed graph in two processes with different string hashes (and no cache)."""
    out = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(SRC), "ARCHZOO_CACHE": str(cache / seed)}
        r = subprocess.run([sys.executable, "-c", _DIGEST, str(raw)], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        out.append(r.stdout.strip())
    assert len(out[0]) == 64
    return out


def test_ids_do_not_follow_pythonhashseed(tmp_path: Path) -> None:
    # Ties everywhere a set order could leak in: two predicates of equal frequency, two
    # blank nodes, literals and URIs, and class labels listed out of order.
    triples = TRIPLES + f'<{E}carol> <{P}knows> _:y .\n_:y <{P}name> "Eve" .\n<{E}lab2> <{P}in> <{E}city> .\n'
    raw = _write_raw(tmp_path / "data", triples)
    first, second = _digests(raw, tmp_path / "cache")
    assert first == second


@pytest.mark.slow
def test_aifb_ids_do_not_follow_pythonhashseed(data_root: Path, tmp_path: Path) -> None:
    first, second = _digests(data_root / "entities" / "aifb" / "raw", tmp_path)
    assert first == second


@pytest.mark.slow
def test_the_graph_is_pygs_up_to_the_numbering(data_root: Path, tmp_path: Path) -> None:
    from rdflib.util import from_n3
    from torch_geometric.datasets import Entities

    root = tmp_path / "pyg"
    shutil.copytree(data_root / "entities" / "aifb" / "raw", root / "aifb" / "raw")
    theirs = Entities(str(root), "AIFB")[0]
    ours = parse_entities(data_root / "entities" / "aifb" / "raw", "aifb")
    assert theirs.num_nodes == ours["num_nodes"] and theirs.edge_index.shape == ours["edge_index"].shape
    assert int(theirs.edge_type.max()) + 1 == ours["num_relations"]
    # Relation frequencies agree (ids may differ only between equally frequent predicates).
    freq = lambda t: sorted(torch.bincount(t).tolist())  # noqa: E731
    assert freq(theirs.edge_type) == freq(ours["edge_type"])
    # The labelled nodes, in the TSV files' order, have the same degrees and the same labels
    # up to renaming the classes.
    for split in ("train", "test"):
        deg_t = torch.bincount(theirs.edge_index[1], minlength=theirs.num_nodes)[theirs[f"{split}_idx"]]
        deg_o = torch.bincount(ours["edge_index"][1], minlength=ours["num_nodes"])[ours[f"{split}_idx"]]
        assert torch.equal(deg_t, deg_o)
        pairs = set(zip(theirs[f"{split}_y"].tolist(), ours[f"{split}_y"].tolist(), strict=True))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # a bijection
    # The whole degree sequence, as a multiset, once the terms PyG merges are merged: PyG keys
    # its nodes by their text, so a URI and a literal that read the same share one id (and the
    # other id is left without edges). AIFB has one such pair; archzoo keeps two nodes.
    text = [str(from_n3(t)) for t in ours["nodes"]]
    first: dict[str, int] = {}
    merged = torch.arange(ours["num_nodes"])
    for i, t in enumerate(text):
        merged[i] = first.setdefault(t, i)
    assert int((merged != torch.arange(ours["num_nodes"])).sum()) == 1
    for row in (0, 1):
        d_t = torch.bincount(theirs.edge_index[row], minlength=theirs.num_nodes).sort().values
        d_o = torch.bincount(merged[ours["edge_index"][row]], minlength=ours["num_nodes"]).sort().values
        assert torch.equal(d_t, d_o)
