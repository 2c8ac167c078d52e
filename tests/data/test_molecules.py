"""Molecules from SMILES: features of known molecules, invalid SMILES counted, CSV reading, splits, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from archzoo.data import molecules as M
from archzoo.errors import UserError


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))


def _block(x: torch.Tensor, k: int) -> torch.Tensor:
    """Block ``k`` of the atom features (element, degree, charge, hybridisation, hydrogens)."""
    sizes = [len(c) + 1 for c in (M.ELEMENTS, M.DEGREES, M.CHARGES, M.HYBRIDISATIONS, M.HYDROGENS)]
    start = sum(sizes[:k])
    return x[:, start : start + sizes[k]]


def test_ethanol_has_three_atoms_and_four_directed_edges() -> None:
    g = M.smiles_to_graph("CCO")
    assert g.x.shape == (3, M.NUM_ATOM_FEATURES)
    assert g.edge_index.shape == (2, 4)
    assert g.edge_attr.shape == (4, M.NUM_BOND_FEATURES)
    # Both directions of each bond, next to each other.
    assert sorted(map(tuple, g.edge_index.T.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    # Every one-hot block has exactly one slot set per atom.
    for k in range(5):
        assert torch.equal(_block(g.x, k).sum(1), torch.ones(3))
    elements = _block(g.x, 0).argmax(1).tolist()
    assert elements == [M.ELEMENTS.index("C"), M.ELEMENTS.index("C"), M.ELEMENTS.index("O")]
    hydrogens = _block(g.x, 4).argmax(1).tolist()
    assert hydrogens == [3, 2, 1]  # CH3, CH2, OH
    assert g.x[:, -2:].sum() == 0  # not aromatic, not in a ring
    assert g.edge_type.tolist() == [0, 0, 0, 0]  # single bonds


def test_benzene_is_aromatic_and_in_a_ring() -> None:
    g = M.smiles_to_graph("c1ccccc1")
    assert g.num_nodes == 6 and g.edge_index.size(1) == 12
    assert torch.equal(g.x[:, -2], torch.ones(6))  # aromatic
    assert torch.equal(g.x[:, -1], torch.ones(6))  # in a ring
    assert g.edge_type.tolist() == [3] * 12  # aromatic bonds
    assert torch.equal(g.edge_attr[:, M.BOND_TYPES.index("AROMATIC")], torch.ones(12))
    assert torch.equal(g.edge_attr[:, len(M.BOND_TYPES) + 2], torch.ones(12))  # bond in a ring


def test_charge_double_bond_and_unknown_element_slots() -> None:
    g = M.smiles_to_graph("C[N+](C)(C)C.[Cl-]")
    charges = _block(g.x, 2).argmax(1).tolist()
    assert charges.count(M.CHARGES.index(1)) == 1 and charges.count(M.CHARGES.index(-1)) == 1
    g = M.smiles_to_graph("C=O")
    assert g.edge_type.tolist() == [1, 1]
    g = M.smiles_to_graph("[U]")  # uranium is not in the list: the "other" slot
    assert _block(g.x, 0)[0, -1] == 1 and g.edge_index.shape == (2, 0)
    assert g.edge_attr.shape == (0, M.NUM_BOND_FEATURES)


def test_invalid_smiles_are_counted_with_their_rows() -> None:
    graphs, invalid = M.featurise(["CCO", "not a smiles", "", "c1ccccc1", "C1CC"])
    assert len(graphs) == 2
    assert invalid == [(1, "not a smiles"), (2, ""), (4, "C1CC")]
    with pytest.raises(UserError, match="cannot parse the SMILES 'C1CC'"):
        M.smiles_to_graph("C1CC")


def _csv(tmp_path: Path, rows: list[tuple[str, float]], newline: bool = True) -> Path:
    text = "smiles,y\n" + "\n".join(f"{s},{v}" for s, v in rows) + ("\n" if newline else "")
    p = tmp_path / "mols.csv"
    p.write_text(text)
    return p


def test_csv_without_a_final_newline_keeps_its_last_row_and_names_missing_columns(tmp_path: Path) -> None:
    p = _csv(tmp_path, [("CCO", 1.0), ("CC", 2.0), ("CCC", 3.0)], newline=False)
    smiles, y = M.read_csv(p, "smiles", "y", "test")
    assert smiles == ["CCO", "CC", "CCC"] and y.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(UserError, match=r"no target column 'logS'; its columns are 'smiles', 'y'"):
        M.read_csv(p, "smiles", "logS", "test")
    with pytest.raises(UserError, match=r"no SMILES column 'SMILES'"):
        M.read_csv(p, "SMILES", "y", "test")


def test_scaffold_split_puts_no_scaffold_in_two_splits() -> None:
    smiles = (
        ["c1ccccc1" + s for s in ("C", "CC", "O", "N", "Cl", "F", "Br", "CO")]  # benzene scaffold, 8
        + ["C1CCCCC1" + s for s in ("C", "O", "N")]  # cyclohexane, 3
        + ["c1ccncc1C", "c1ccncc1O"]  # pyridine, 2
        + ["CCO", "CCCC", "CCN"]  # acyclic: scaffold ""
        + ["C1CC1C", "c1ccc2ccccc2c1"]
    )
    scaffolds = [M.scaffold_of(s) for s in smiles]
    train, val, test = M.scaffold_split(scaffolds)
    assert sorted(train + val + test) == list(range(len(smiles)))
    parts = [{scaffolds[i] for i in s} for s in (train, val, test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set(range(8)) <= set(train)  # the largest group goes to train first
    assert len(train) <= 0.8 * len(smiles)


def test_random_split_is_80_10_10_and_follows_the_seed() -> None:
    a = M.random_split(100, 0)
    assert [len(s) for s in a] == [80, 10, 10]
    assert sorted(a[0] + a[1] + a[2]) == list(range(100))
    assert M.random_split(100, 0) == a and M.random_split(100, 1) != a


def _fake_root(tmp_path: Path, rows: list[tuple[str, float]]) -> Path:
    folder = tmp_path / "root" / "moleculenet" / "esol" / "raw"
    folder.mkdir(parents=True)
    col = "measured log solubility in mols per litre"
    body = "\n".join(f"{s},{v}" for s, v in rows)
    (folder / "delaney-processed.csv").write_text(f"smiles,{col}\n{body}\n")
    return tmp_path / "root"


def test_dataset_standardises_on_train_reports_invalid_and_uses_the_cache(tmp_path: Path) -> None:
    rows = [("C" * (i + 1) + "O", float(i)) for i in range(20)] + [("C1CC", 5.0)]
    root = _fake_root(tmp_path, rows)
    with pytest.warns(UserWarning, match=r"skipped 1 of 21 SMILES.*row 20 'C1CC'"):
        b = M.esol(data_dir=root, seed=3)
    info = b.info
    assert info["num_invalid"] == 1 and info["invalid"] == [[20, "C1CC"]] and info["rows"] == 21
    assert info["sizes"] == {"train": 16, "val": 2, "test": 2}
    ys = torch.cat([g.y for g in b.train.data_list])
    assert abs(float(ys.mean())) < 1e-5 and abs(float(ys.std(unbiased=False)) - 1) < 1e-5
    train_y = ys * info["target_std"] + info["target_mean"]
    assert set(np.round(train_y.numpy(), 4).tolist()) <= set(map(float, range(20)))
    cached = list((tmp_path / "cache" / "molecules").glob("esol-*.pt"))
    assert len(cached) == 1
    with pytest.warns(UserWarning):
        again = M.esol(data_dir=root, seed=3)
    for g, h in zip(b.test.data_list, again.test.data_list, strict=True):
        assert torch.equal(g.x, h.x) and torch.equal(g.edge_index, h.edge_index)
        assert torch.equal(g.edge_attr, h.edge_attr) and torch.equal(g.edge_type, h.edge_type)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, [("C" * (i + 1), float(i)) for i in range(12)])
    with pytest.raises(UserError, match="split must be one of random, scaffold"):
        M.esol(data_dir=root, split="stratified")
    with pytest.raises(UserError, match="no target column 'logS'"):
        M.esol(data_dir=root, target_column="logS")
    with pytest.raises(UserError, match="max_molecules must be at least 10"):
        M.esol(data_dir=root, max_molecules=3)


def test_tpsa_embedded_targets_are_rdkit_tpsa() -> None:
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    b = M.tpsa(max_molecules=40)
    assert b.info["num_molecules"] + b.info["num_invalid"] == 40
    assert sum(b.info["sizes"].values()) == b.info["num_molecules"]
    first = M.rdkit_nci_file().read_text().split()[0]
    assert b.info["target_mean"] != 0
    want = rdMolDescriptors.CalcTPSA(Chem.MolFromSmiles(first))
    all_graphs = b.train.data_list + b.val.data_list + b.test.data_list
    values = [float(g.y) * b.info["target_std"] + b.info["target_mean"] for g in all_graphs]
    assert min(abs(v - want) for v in values) < 1e-3


# Row counts of the MANIFEST (../shared/data/MANIFEST.md) and BBBP's 11 SMILES that RDKit rejects.
COUNTS = {"esol": (1128, 0), "freesolv": (642, 0), "lipo": (4200, 0), "bbbp": (2050, 11)}


@pytest.mark.parametrize("key", list(COUNTS))
def test_real_csvs_count_every_row(key: str, data_root: Path) -> None:
    file, smiles_col, target_col, _ = M.MOLECULENET[key]
    smiles, y = M.read_csv(data_root / "moleculenet" / key / "raw" / file, smiles_col, target_col, key)
    rows, invalid = COUNTS[key]
    assert len(smiles) == len(y) == rows
    if key == "bbbp":
        _, bad = M.featurise(smiles)
        assert len(bad) == invalid
        assert [i for i, _ in bad][:2] == [59, 61]  # the rows named in the MANIFEST (0-based)
