r"""Sets of small graphs for graph generation: two-community graphs as in GraphRNN's community-small.

``community_small`` (You et al. 2018, https://arxiv.org/abs/1802.08773, Section 4.1): each
graph has two communities of 6–10 nodes (12–20 nodes in all), each an Erdős–Rényi graph
with edge probability 0.3, joined by :math:`\max(1, \mathrm{round}(0.05\,|V|))` random edges
between the communities. The graphs are drawn from a fixed seed and split at random (the
same seed) into train, validation and test; node features are the one-hot degree.

``molecule_graphs``: small molecules as graphs to generate, read with the molecule reader of
:mod:`archzoo.data.molecules` (ESOL's 1,128 SMILES by default, or RDKit's embedded NCI set
with ``source=tpsa``). Heavy atoms only; a molecule is kept when it has
2 to ``max_atoms`` heavy atoms, one fragment, no formal charge and only elements of
:data:`MOLGEN_ELEMENTS` (so that every kept molecule can be written back from its atom and
bond types alone; ESOL keeps 902 distinct ones of 1,128 at 20 atoms,
split 721 / 90 / 91). Each graph carries
``node_type`` :math:`(N,)` (index in :data:`MOLGEN_ELEMENTS`) and ``edge_type`` :math:`(2B,)`,
the **kekulised** bond type (0 single, 1 double, 2 triple: :data:`MOLGEN_BONDS`; aromatic
rings are written as alternating single and double bonds, so a sampled graph needs no
aromaticity flags and RDKit perceives the rings again on sanitising). The encoder's node
features are the molecule reader's atom features. Split 80/10/10 at random from a fixed seed.

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

#: Atom types of ``molecule_graphs`` (``node_type`` indexes this).
MOLGEN_ELEMENTS = ("C", "N", "O", "F", "S", "Cl", "Br", "I", "P")
#: Kekulised bond types of ``molecule_graphs`` (``edge_type`` indexes this).
MOLGEN_BONDS = ("SINGLE", "DOUBLE", "TRIPLE")
MOLGEN_SOURCES = ("esol", "tpsa")


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


def _molgen_smiles(source: str) -> list[str]:
    """The SMILES of a ``molecule_graphs`` source, read by :mod:`archzoo.data.molecules`' readers."""
    from archzoo.data.molecules import MOLECULENET, rdkit_nci_file, read_csv
    from archzoo.data.root import find_dataset_dir

    if source == "tpsa":
        return [ln.split()[0] for ln in rdkit_nci_file().read_text().splitlines() if ln.strip()]
    file, smiles_col, target_col, _ = MOLECULENET[source]
    folder = find_dataset_dir(
        source,
        None,
        subdirs=[f"moleculenet/{source}/raw"],
        required=[file],
        how_to_get="copy DeepChem's MoleculeNet CSV (see ../shared/data/MANIFEST.md)",
    )
    return read_csv(folder / file, smiles_col, target_col, source)[0]


def molecule_graph(mol: Any) -> Any | None:
    """A ``molecule_graphs`` graph of an RDKit molecule, or None when it falls outside the vocabulary.

    ``x`` are :func:`~archzoo.data.molecules.mol_to_graph`'s atom features, ``node_type`` the
    element's index in :data:`MOLGEN_ELEMENTS`, ``edge_type`` the kekulised bond's index in
    :data:`MOLGEN_BONDS` (both directions of each bond, in ``mol_to_graph``'s order), ``smiles``
    RDKit's canonical SMILES.
    """
    from rdkit import Chem

    from archzoo.data.molecules import mol_to_graph

    atoms = list(mol.GetAtoms())
    if any(a.GetSymbol() not in MOLGEN_ELEMENTS or a.GetFormalCharge() != 0 for a in atoms):
        return None
    if len(Chem.GetMolFrags(mol)) != 1:
        return None
    kek = Chem.RWMol(mol)
    try:
        Chem.Kekulize(kek, clearAromaticFlags=True)
    except Chem.KekulizeException:
        return None
    kinds = [str(b.GetBondType()) for b in kek.GetBonds()]  # same bond order as mol's
    if any(k not in MOLGEN_BONDS for k in kinds):
        return None
    d = mol_to_graph(mol)
    d.node_type = torch.tensor([MOLGEN_ELEMENTS.index(a.GetSymbol()) for a in atoms], dtype=torch.long)
    d.edge_type = torch.tensor([MOLGEN_BONDS.index(k) for k in kinds], dtype=torch.long).repeat_interleave(2)
    d.smiles = Chem.MolToSmiles(mol)
    return d


@register_dataset("molecule_graphs")
def molecule_graphs(source: str = "esol", max_atoms: int = 20, max_molecules: int | None = None) -> DataBundle:
    """Small molecules (heavy atoms, element and kekulised bond labels) for graph generation; see the module docstring.

    Args:
        source: ``esol`` (MoleculeNet's 1,128 SMILES, default) or ``tpsa`` (RDKit's embedded 4,999 NCI ones).
        max_atoms: most heavy atoms of a kept molecule (default 20).
        max_molecules: keep the first kept molecules only (default all).
    """
    from archzoo.data.molecules import _parse

    if source not in MOLGEN_SOURCES:
        raise UserError(f"data.args.source must be one of {', '.join(MOLGEN_SOURCES)}, got '{source}'.")
    if max_atoms < 2:
        raise UserError(f"data.args.max_atoms must be at least 2, got {max_atoms}.")
    smiles = _molgen_smiles(source)
    graphs, seen = [], set()
    for s in smiles:
        if max_molecules is not None and len(graphs) >= max_molecules:
            break  # the first kept ones only: no need to parse the rest
        mol = _parse(s)
        if mol is None or not 2 <= mol.GetNumAtoms() <= max_atoms:  # a lone atom is no graph
            continue
        d = molecule_graph(mol)
        if d is None or d.smiles in seen:
            continue
        seen.add(d.smiles)
        check_graph(d, "molecule_graphs")
        graphs.append(d)
    if len(graphs) < 10:
        raise UserError(f"molecule_graphs: {len(graphs)} molecules are kept, too few to split; raise max_atoms.")
    perm = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(DATA_SEED)).tolist()
    n_train, n_val = int(0.8 * len(graphs)), int(0.1 * len(graphs))
    train, val, test = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    from archzoo.data.molecules import NUM_ATOM_FEATURES

    info: dict[str, Any] = {
        "num_node_features": NUM_ATOM_FEATURES,
        "max_nodes": max(d.num_nodes for d in graphs),
        "node_types": len(MOLGEN_ELEMENTS),
        "edge_types": len(MOLGEN_BONDS),
        "elements": list(MOLGEN_ELEMENTS),
        "bond_types": list(MOLGEN_BONDS),
        "train_sizes": [graphs[i].num_nodes for i in train],
        "train_smiles": sorted(graphs[i].smiles for i in train),
        "source": source,
        "rows": len(smiles),
        "num_molecules": len(graphs),
        "molecules": True,
        "kind": "graphs",
    }
    return DataBundle(*(GraphBatches([graphs[i] for i in s]) for s in (train, val, test)), info=info)
