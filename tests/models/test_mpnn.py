"""The MPNN graph model: shapes, options, batching and node-order invariance on molecules."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from archzoo.data.molecules import NUM_ATOM_FEATURES, NUM_BOND_FEATURES, smiles_to_graph
from archzoo.errors import UserError
from archzoo.layers.readout import READOUTS
from archzoo.registry import create_model

SMILES = ["CCO", "c1ccccc1O", "CC(=O)N"]


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    args = {"num_node_features": NUM_ATOM_FEATURES, "num_edge_features": NUM_BOND_FEATURES, "hidden": 16, **kw}
    return create_model("mpnn_graph", **args).eval()


@pytest.mark.parametrize("readout", READOUTS)
def test_one_output_row_per_molecule_and_batching_changes_nothing(readout: str) -> None:
    model = _model(readout=readout)
    graphs = [smiles_to_graph(s) for s in SMILES]
    with torch.no_grad():
        together = model(Batch.from_data_list(graphs))
        alone = torch.cat([model(Batch.from_data_list([g])) for g in graphs])
    assert together.shape == (3, 1)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_classification_gives_logits_per_class() -> None:
    model = _model(num_classes=2)
    with torch.no_grad():
        assert model(Batch.from_data_list([smiles_to_graph(s) for s in SMILES])).shape == (3, 2)


def test_renumbering_the_atoms_does_not_change_the_prediction() -> None:
    from rdkit import Chem

    from archzoo.data.molecules import mol_to_graph

    mol = Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1")  # paracetamol
    order = list(reversed(range(mol.GetNumAtoms())))
    shuffled = Chem.RenumberAtoms(mol, order)
    model = _model(update="residual", readout="set2set")
    with torch.no_grad():
        a = model(Batch.from_data_list([mol_to_graph(mol)]))
        b = model(Batch.from_data_list([mol_to_graph(shuffled)]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_shared_weights_are_one_layer_and_unshared_one_per_step() -> None:
    shared, unshared = _model(steps=3, shared=True), _model(steps=3, shared=False)
    assert len(shared.convs) == 1 and len(unshared.convs) == 3
    per_layer = sum(p.numel() for p in shared.convs[0].parameters())
    n_shared = sum(p.numel() for p in shared.parameters())
    assert sum(p.numel() for p in unshared.parameters()) == n_shared + 2 * per_layer


def test_edge_features_reach_the_output() -> None:
    model = _model()
    batch = Batch.from_data_list([smiles_to_graph("C=CC#N")])
    with torch.no_grad():
        a = model(batch)
        batch.edge_attr = torch.zeros_like(batch.edge_attr)
        b = model(batch)
    assert not torch.allclose(a, b)


def test_bad_options_are_refused() -> None:
    with pytest.raises(UserError, match="steps must be at least 1"):
        _model(steps=0)
    with pytest.raises(UserError, match="num_targets applies to regression only"):
        _model(num_classes=2, num_targets=3)
    with pytest.raises(UserError, match="readout_steps applies to the set2set readout only"):
        _model(readout="sum", readout_steps=5)
    with pytest.raises(UserError, match="Unknown readout"):
        _model(readout="median")
