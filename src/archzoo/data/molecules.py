r"""Molecules from SMILES: RDKit graphs with atom and bond features, MoleculeNet CSVs and the embedded TPSA set.

A molecule is a graph whose nodes are its heavy atoms and whose edges are its bonds,
both directions of each (:func:`mol_to_graph`). Each atom is described by one-hot
blocks, each with a last "other" slot for values outside the list, and two flags:

* element (:data:`ELEMENTS`), degree 0–5, formal charge −2…+2, hybridisation
  (SP, SP2, SP3, SP3D, SP3D2), total hydrogens 0–4; aromatic, in a ring.

Each bond: its type (single, double, triple, aromatic, other), conjugated, in a ring,
and its stereo label (none, any, Z, E, cis, trans, other). ``edge_type`` holds the bond
type as an index 0–3 (single, double, triple, aromatic; an unusual bond, dative say,
counts as single and is marked by the "other" slot of ``edge_attr``), so a relational
model (R-GCN) can use bonds as relations.

The models see these features only: never a CSV's descriptor columns (ESOL's file
carries a predicted solubility and a polar surface area) and never an RDKit-computed
target.

Invalid SMILES are counted and reported, never silently dropped: :func:`featurise`
returns the graphs and the rows it could not parse (a SMILES RDKit rejects, or one
with no atoms); a dataset lists them in ``info["invalid"]`` and warns once, naming
how many and the first few.

Datasets (all regression targets standardised with the training split's mean and
standard deviation; the regression task reports its metrics in the original units
through ``info["target_mean"]`` / ``info["target_std"]``):

* ``tpsa`` (embedded): the 4,999 NCI molecules of ``first_5K.smi`` shipped inside the
  installed RDKit package (``RDConfig.RDDataDir/NCI``), with the topological polar
  surface area (Ertl et al. 2000) computed by ``rdMolDescriptors.CalcTPSA`` as target.
* ``esol``, ``freesolv``, ``lipo``: MoleculeNet regression (log solubility, hydration
  free energy in kcal/mol, logD 7.4) from ``<data root>/moleculenet/<key>/raw/<csv>``.
* ``bbbp``: MoleculeNet blood–brain barrier penetration (binary ``p_np``); RDKit cannot
  parse 11 of its 2,050 SMILES.

The CSVs are read with pandas, which counts every row (PyG's ``MoleculeNet`` reader drops
the last line of a file without a final newline, as ``Lipophilicity.csv`` is). Splits
are 80/10/10, ``random`` (a permutation from ``seed``) or ``scaffold``: molecules grouped
by their Bemis–Murcko scaffold, the largest groups into train first, then validation,
then test, so that no scaffold is in two splits (deterministic: the seed changes only
the model's initialisation and the batch order).

Featurised graphs are cached under :func:`~archzoo.data.root.cache_dir` ``("molecules")``,
keyed by the SHA-256 of the file, the SMILES column and :data:`FEATURISER_VERSION`, as
plain tensors (loaded with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archzoo.data.root import PathLike, cache_dir, find_dataset_dir, read_cache_tensors
from archzoo.data.splits import DataBundle, GraphBatches
from archzoo.errors import DataError, UserError
from archzoo.registry import register_dataset

#: Bump when the features change: cached graphs of another version are not reused.
FEATURISER_VERSION = 1

ELEMENTS = (
    "C", "N", "O", "S", "F", "Cl", "Br", "I", "P", "B", "Si", "Se",
    "Na", "K", "Li", "Mg", "Ca", "Fe", "Zn", "Cu", "Al", "Sn", "As", "Hg", "H",
)  # fmt: skip
DEGREES = (0, 1, 2, 3, 4, 5)
CHARGES = (-2, -1, 0, 1, 2)
HYBRIDISATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
HYDROGENS = (0, 1, 2, 3, 4)
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
STEREO = ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")

#: Width of ``x``: each one-hot block has an "other" slot; aromatic and in-ring are flags.
NUM_ATOM_FEATURES = sum(len(c) + 1 for c in (ELEMENTS, DEGREES, CHARGES, HYBRIDISATIONS, HYDROGENS)) + 2
#: Width of ``edge_attr``: bond type (+ other), conjugated, in ring, stereo (+ other).
NUM_BOND_FEATURES = len(BOND_TYPES) + 1 + 2 + len(STEREO) + 1
#: Relations of ``edge_type``: single, double, triple, aromatic.
NUM_BOND_TYPES = len(BOND_TYPES)

SPLITS = ("random", "scaffold")
FRACTIONS = (0.8, 0.1, 0.1)


def _one_hot(value: Any, choices: Sequence[Any]) -> list[float]:
    """``choices``' one-hot of ``value`` and a last slot set when ``value`` is none of them."""
    out = [0.0] * (len(choices) + 1)
    out[choices.index(value) if value in choices else len(choices)] = 1.0
    return out


def atom_features(atom: Any) -> list[float]:
    """The :data:`NUM_ATOM_FEATURES` features of an RDKit atom."""
    return (
        _one_hot(atom.GetSymbol(), ELEMENTS)
        + _one_hot(atom.GetDegree(), DEGREES)
        + _one_hot(atom.GetFormalCharge(), CHARGES)
        + _one_hot(str(atom.GetHybridization()), HYBRIDISATIONS)
        + _one_hot(atom.GetTotalNumHs(), HYDROGENS)
        + [float(atom.GetIsAromatic()), float(atom.IsInRing())]
    )


def bond_features(bond: Any) -> list[float]:
    """The :data:`NUM_BOND_FEATURES` features of an RDKit bond."""
    return (
        _one_hot(str(bond.GetBondType()), BOND_TYPES)
        + [float(bond.GetIsConjugated()), float(bond.IsInRing())]
        + _one_hot(str(bond.GetStereo()), STEREO)
    )


def _parse(smiles: str) -> Any:
    """RDKit's molecule of ``smiles``, or None when it cannot be parsed or has no atoms (RDKit's log silenced)."""
    from rdkit import Chem, RDLogger

    if not isinstance(smiles, str) or not smiles.strip():
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def mol_to_graph(mol: Any) -> Any:
    r"""A PyG ``Data`` of an RDKit molecule: its heavy atoms and both directions of each bond.

    Shapes:
        ``x`` :math:`(N, F_a)`, ``edge_index`` :math:`(2, 2B)` (bond :math:`k` is columns
        :math:`2k` and :math:`2k+1`), ``edge_attr`` :math:`(2B, F_b)`, ``edge_type`` :math:`(2B,)`
        in ``0 .. 3``.
    """
    from torch_geometric.data import Data

    x = torch.tensor([atom_features(a) for a in mol.GetAtoms()], dtype=torch.float32)  # (N, F_a)
    src, dst, attr, kind = [], [], [], []
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        f = bond_features(b)
        t = str(b.GetBondType())
        k = BOND_TYPES.index(t) if t in BOND_TYPES else 0  # an unusual bond counts as single
        src += [i, j]
        dst += [j, i]
        attr += [f, f]
        kind += [k, k]
    edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)  # (2, 2B)
    edge_attr = torch.tensor(attr, dtype=torch.float32).reshape(-1, NUM_BOND_FEATURES)  # (2B, F_b)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, edge_type=torch.tensor(kind, dtype=torch.long))


def smiles_to_graph(smiles: str) -> Any:
    """The graph of one SMILES string; an unparseable one (or one without atoms) is a :class:`UserError`."""
    mol = _parse(smiles)
    if mol is None:
        raise UserError(f"RDKit cannot parse the SMILES {smiles!r} (or it has no atoms).")
    return mol_to_graph(mol)


def featurise(smiles: Sequence[str]) -> tuple[list[Any], list[tuple[int, str]]]:
    """The graphs of the SMILES that parse, and ``(row, smiles)`` of each that does not (0-based rows).

    A SMILES that RDKit rejects, an empty string and a molecule with no atoms are invalid.
    """
    graphs, invalid = [], []
    for i, s in enumerate(smiles):
        mol = _parse(s)
        if mol is None:
            invalid.append((i, str(s)))
        else:
            graphs.append(mol_to_graph(mol))
    return graphs, invalid


def scaffold_of(smiles: str) -> str:
    """The Bemis–Murcko scaffold of a SMILES as canonical SMILES (``""`` for an acyclic molecule)."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = _parse(smiles)
    if mol is None:
        raise UserError(f"RDKit cannot parse the SMILES {smiles!r} (or it has no atoms).")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


# ----------------------------------------------------------------------------- splits


def random_split(n: int, seed: int) -> tuple[list[int], list[int], list[int]]:
    """80/10/10 of ``range(n)`` from a permutation seeded by ``seed``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_train, n_val = int(FRACTIONS[0] * n), int(FRACTIONS[1] * n)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def scaffold_split(scaffolds: Sequence[str]) -> tuple[list[int], list[int], list[int]]:
    """80/10/10 by scaffold: groups sorted by size, largest first, fill train, then val, then test.

    Groups of one size are ordered by their first molecule's index, the later first, as
    DeepChem's ``ScaffoldSplitter`` orders them (``sorted(..., key=(len, first index),
    reverse=True)``): the test split then holds the singleton scaffolds that come earliest in
    the file. A group goes to train unless it would take train past 80%, then to validation
    unless that would pass 90%, else to test; no scaffold is in two splits.
    """
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scaffolds):
        groups.setdefault(s, []).append(i)
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[0]), reverse=True)
    n = len(scaffolds)
    train_cut, val_cut = FRACTIONS[0] * n, (FRACTIONS[0] + FRACTIONS[1]) * n
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for g in ordered:
        if len(train) + len(g) <= train_cut:
            train += g
        elif len(train) + len(val) + len(g) <= val_cut:
            val += g
        else:
            test += g
    return train, val, test


# ----------------------------------------------------------------------------- reading and caching


def read_csv(path: Path, smiles_column: str, target_column: str, name: str) -> tuple[list[str], np.ndarray]:
    """Every row's SMILES and target from a CSV (pandas counts every row, final newline or not)."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{name}: {path} could not be read as CSV ({type(e).__name__}: {e}).") from None
    for what, col in (("SMILES", smiles_column), ("target", target_column)):
        if col not in df.columns:
            present = ", ".join(repr(c) for c in df.columns)
            raise UserError(f"{name}: {path.name} has no {what} column {col!r}; its columns are {present}.")
    smiles = ["" if isinstance(s, float) else str(s) for s in df[smiles_column].tolist()]  # NaN: an empty cell
    try:
        y = df[target_column].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{name}: the target column {target_column!r} of {path.name} is not numeric.") from None
    return smiles, y


def _featurised(key: str, digest: str, smiles: list[str]) -> tuple[list[Any], list[tuple[int, str]], list[str]]:
    """:func:`featurise` and the scaffolds of the valid molecules, cached on disk by ``digest``."""
    from torch_geometric.data import Data

    path = cache_dir("molecules") / f"{key}-{digest[:24]}-v{FEATURISER_VERSION}.pt"
    if path.is_file():
        c = read_cache_tensors(path)  # None for a file archzoo did not write (nothing in it runs)
        try:
            ok = c is not None and c["version"] == FEATURISER_VERSION and c["n"] == len(smiles)
        except (KeyError, TypeError):
            ok = False
        if ok:
            graphs = []
            node_ptr, edge_ptr = c["node_ptr"].tolist(), c["edge_ptr"].tolist()
            for g in range(len(node_ptr) - 1):
                a, b, e0, e1 = node_ptr[g], node_ptr[g + 1], edge_ptr[g], edge_ptr[g + 1]
                graphs.append(
                    Data(
                        x=c["x"][a:b].float(),
                        edge_index=c["edge_index"][:, e0:e1].long(),
                        edge_attr=c["edge_attr"][e0:e1].float(),
                        edge_type=c["edge_type"][e0:e1].long(),
                    )
                )
            invalid = [(int(i), smiles[int(i)]) for i in c["invalid"].tolist()]
            return graphs, invalid, list(c["scaffolds"])
    graphs, invalid = featurise(smiles)
    if not graphs:
        raise UserError(f"{key}: RDKit can parse none of the {len(smiles)} SMILES.")
    bad = {i for i, _ in invalid}
    scaffolds = [scaffold_of(s) for i, s in enumerate(smiles) if i not in bad]
    nodes = [0] + np.cumsum([d.num_nodes for d in graphs]).tolist()
    edges = [0] + np.cumsum([d.edge_index.size(1) for d in graphs]).tolist()
    blob = {
        "version": FEATURISER_VERSION,
        "n": len(smiles),
        "x": torch.cat([d.x for d in graphs]).to(torch.uint8),  # one-hot and flags: exact in uint8
        "edge_index": torch.cat([d.edge_index for d in graphs], 1).to(torch.int32),  # local ids per molecule
        "edge_attr": torch.cat([d.edge_attr for d in graphs]).to(torch.uint8),
        "edge_type": torch.cat([d.edge_type for d in graphs]).to(torch.uint8),
        "node_ptr": torch.tensor(nodes),
        "edge_ptr": torch.tensor(edges),
        "invalid": torch.tensor([i for i, _ in invalid], dtype=torch.long),
        "scaffolds": scaffolds,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)  # atomic: another process never reads half a file
    return graphs, invalid, scaffolds


def _report_invalid(name: str, invalid: list[tuple[int, str]], rows: int) -> None:
    if invalid:
        shown = ", ".join(f"row {i} {s!r}" for i, s in invalid[:3])
        more = f" and {len(invalid) - 3} more" if len(invalid) > 3 else ""
        warnings.warn(
            f"{name}: skipped {len(invalid)} of {rows} SMILES that RDKit cannot parse (0-based data rows): "
            f"{shown}{more}; they are listed in info['invalid'].",
            stacklevel=3,
        )


def build_bundle(
    name: str,
    smiles: list[str],
    y: np.ndarray,
    digest: str,
    *,
    task: str,
    split: str,
    seed: int,
    extra_info: dict[str, Any] | None = None,
) -> DataBundle:
    """Featurise (or load from the cache), split, standardise regression targets on train, and wrap as GraphBatches."""
    if split not in SPLITS:
        raise UserError(f"data.args.split must be one of {', '.join(SPLITS)}, got '{split}'.")
    graphs, invalid, scaffolds = _featurised(name, digest, smiles)
    bad = {i for i, _ in invalid}
    rows = [i for i in range(len(smiles)) if i not in bad]
    targets = y[rows]
    missing = np.flatnonzero(~np.isfinite(targets))
    if len(missing):
        raise UserError(f"{name}: {len(missing)} molecules have no target value, e.g. row {rows[int(missing[0])]}.")
    _report_invalid(name, invalid, len(smiles))
    if len(graphs) < 10:
        raise UserError(f"{name}: {len(graphs)} valid molecules are too few for an 80/10/10 split.")
    train, val, test = random_split(len(graphs), seed) if split == "random" else scaffold_split(scaffolds)
    info: dict[str, Any] = {
        "kind": "graphs",
        "num_node_features": NUM_ATOM_FEATURES,
        "num_edge_features": NUM_BOND_FEATURES,
        "num_relations": NUM_BOND_TYPES,
        "featuriser_version": FEATURISER_VERSION,
        "molecules": True,
        "rows": len(smiles),
        "num_molecules": len(graphs),
        "num_invalid": len(invalid),
        "invalid": [[i, s] for i, s in invalid],
        "split": split,
        "sizes": {"train": len(train), "val": len(val), "test": len(test)},
    }
    if task == "regression":
        mean, std = float(targets[train].mean()), float(targets[train].std())
        std = std if std > 0 else 1.0
        ys = torch.tensor((targets - mean) / std, dtype=torch.float32)
        info.update(num_targets=1, target_mean=mean, target_std=std)
    else:
        labels = targets.astype(np.int64)
        if set(np.unique(labels).tolist()) - {0, 1}:
            raise UserError(f"{name}: the classification target must be 0 or 1.")
        ys = torch.tensor(labels)
        info.update(num_classes=2, classes=["0", "1"])
    for g, t in zip(graphs, ys, strict=True):
        g.y = t.reshape(1)
    info.update(extra_info or {})
    return DataBundle(*(GraphBatches([graphs[i] for i in s]) for s in (train, val, test)), info=info)


def _digest(path: Path, *parts: str) -> str:
    h = hashlib.sha256(path.read_bytes())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- MoleculeNet

#: key -> (CSV file, SMILES column, target column, task)
MOLECULENET: dict[str, tuple[str, str, str, str]] = {
    "esol": ("delaney-processed.csv", "smiles", "measured log solubility in mols per litre", "regression"),
    "freesolv": ("SAMPL.csv", "smiles", "expt", "regression"),
    "lipo": ("Lipophilicity.csv", "smiles", "exp", "regression"),
    "bbbp": ("BBBP.csv", "smiles", "p_np", "classification"),
}


def moleculenet(
    key: str,
    data_dir: PathLike | None = None,
    split: str = "random",
    seed: int = 0,
    smiles_column: str | None = None,
    target_column: str | None = None,
    max_molecules: int | None = None,
) -> DataBundle:
    """A MoleculeNet CSV from ``<data root>/moleculenet/<key>/raw`` as graph splits (see the module docstring)."""
    if key not in MOLECULENET:
        raise UserError(f"Unknown MoleculeNet dataset '{key}'; choose one of {', '.join(MOLECULENET)}.")
    file, smiles_col, target_col, task = MOLECULENET[key]
    smiles_col, target_col = smiles_column or smiles_col, target_column or target_col
    folder = find_dataset_dir(
        key,
        data_dir,
        subdirs=[f"moleculenet/{key}/raw"],
        required=[file],
        how_to_get="copy DeepChem's MoleculeNet CSV (see ../shared/data/MANIFEST.md)",
    )
    path = folder / file
    smiles, y = read_csv(path, smiles_col, target_col, key)
    if max_molecules is not None:
        if max_molecules < 10:
            raise UserError(f"data.args.max_molecules must be at least 10, got {max_molecules}.")
        smiles, y = smiles[:max_molecules], y[:max_molecules]
    digest = _digest(path, smiles_col, str(len(smiles)))
    extra = {"source": str(path), "target": target_col, "smiles_column": smiles_col}
    return build_bundle(key, smiles, y, digest, task=task, split=split, seed=seed, extra_info=extra)


def _moleculenet_builder(key: str, default_split: str, doc: str) -> Any:
    def builder(
        data_dir: PathLike | None = None,
        split: str = default_split,
        seed: int = 0,
        smiles_column: str | None = None,
        target_column: str | None = None,
        max_molecules: int | None = None,
    ) -> DataBundle:
        return moleculenet(key, data_dir, split, seed, smiles_column, target_column, max_molecules)

    builder.__name__ = builder.__qualname__ = key
    builder.__doc__ = (
        doc
        + """

    Args:
        split: ``random`` or ``scaffold`` 80/10/10 (see the module docstring).
        seed: the random split's seed (default: ``train.seed``).
        smiles_column: the CSV column of SMILES (default the file's).
        target_column: the CSV column of the target (default the file's).
        max_molecules: keep the first rows only (default all).
    """
    )
    return register_dataset(key)(builder)


esol = _moleculenet_builder("esol", "random", "ESOL (Delaney 2004): log aqueous solubility (mol/L) of 1,128 molecules.")
freesolv = _moleculenet_builder("freesolv", "random", "FreeSolv: hydration free energy (kcal/mol) of 642 molecules.")
lipo = _moleculenet_builder("lipo", "random", "Lipophilicity: logD at pH 7.4 of 4,200 ChEMBL molecules.")
bbbp = _moleculenet_builder(
    "bbbp", "scaffold", "BBBP: blood-brain barrier penetration (p_np, binary) of 2,050 SMILES, 11 unparseable."
)


# ----------------------------------------------------------------------------- embedded: TPSA


def rdkit_nci_file() -> Path:
    """``first_5K.smi``, the NCI molecules shipped inside the installed RDKit package."""
    from rdkit import RDConfig

    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    if not path.is_file():
        raise DataError(f"tpsa: the installed RDKit has no {path}; reinstall rdkit (its wheel ships the NCI files).")
    return path


@register_dataset("tpsa")
def tpsa(split: str = "random", seed: int = 0, max_molecules: int | None = None) -> DataBundle:
    """RDKit's 4,999 bundled NCI molecules with their topological polar surface area (RDKit's CalcTPSA) as target.

    The embedded default of the molecule family: no data root needed. TPSA is a sum of
    contributions of N, O (and by default not S, P) atoms by their bonding environment
    (Ertl et al. 2000), so it is learnable from the atom and bond features; the target is
    never a feature.

    Args:
        split: ``random`` or ``scaffold`` 80/10/10.
        seed: the random split's seed (default: ``train.seed``).
        max_molecules: keep the first molecules of the file only (default all 4,999).
    """
    from rdkit.Chem import rdMolDescriptors

    path = rdkit_nci_file()
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    smiles = [parts[0] for parts in lines]
    if max_molecules is not None:
        if max_molecules < 10:
            raise UserError(f"data.args.max_molecules must be at least 10, got {max_molecules}.")
        smiles = smiles[:max_molecules]
    y = np.array([np.nan if (m := _parse(s)) is None else rdMolDescriptors.CalcTPSA(m) for s in smiles])
    digest = _digest(path, "tpsa", str(len(smiles)))
    extra = {"source": str(path), "target": "TPSA (rdMolDescriptors.CalcTPSA)"}
    return build_bundle("tpsa", smiles, y, digest, task="regression", split=split, seed=seed, extra_info=extra)
