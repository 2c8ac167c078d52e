"""The graph VAE's typed decoder: atom and bond type logits, their likelihood terms, typed samples."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.registry import create_model


def _typed(**kw):
    torch.manual_seed(0)
    return create_model("graph_vae", num_node_features=3, hidden=8, layers=2, latent=4, graph_latent=3,
                        node_types=4, edge_types=3, **kw)  # fmt: skip


def test_typed_decoder_shapes_and_loss_terms_are_the_written_out_ones():
    from torch_geometric.data import Batch, Data

    model = _typed().eval()
    g1 = Data(x=torch.randn(3, 3), edge_index=torch.tensor([[0, 1], [1, 0]]), node_type=torch.tensor([0, 2, 3]),
              edge_type=torch.tensor([1, 1]))  # fmt: skip
    g2 = Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1, 2, 1, 2, 3], [1, 2, 3, 0, 1, 2]]),
              node_type=torch.tensor([1, 1, 0, 0]), edge_type=torch.tensor([0, 2, 0, 0, 2, 0]))  # fmt: skip
    batch = Batch.from_data_list([g1, g2])
    out = model(batch)
    assert out.node_type_logits.shape == (2, 4, 4) and out.bond_logits.shape == (2, 4, 4, 3)
    assert torch.allclose(out.bond_logits, out.bond_logits.transpose(1, 2), atol=1e-6)  # symmetric in i, j
    t = model.neg_elbo(out, batch)
    t_ = {k: v.detach() for k, v in t.items()}
    for g, (d, bonds) in enumerate([(g1, {(0, 1): 1}), (g2, {(0, 1): 0, (1, 2): 2, (2, 3): 0})]):
        want_nodes = sum(
            -F.log_softmax(out.node_type_logits[g, i], -1)[int(d.node_type[i])] for i in range(d.num_nodes)
        )
        want_bonds = sum(-F.log_softmax(out.bond_logits[g, i, j], -1)[k] for (i, j), k in bonds.items())
        assert float(t_["recon_nodes"][g]) == pytest.approx(float(want_nodes.detach()), abs=1e-4)
        assert float(t_["recon_bonds"][g]) == pytest.approx(float(want_bonds.detach()), abs=1e-4)
    assert torch.allclose(t["recon"], t["recon_edges"] + t["recon_nodes"] + t["recon_bonds"])
    loss = (t["recon"] + t["kl_graph"] + t["kl_nodes"]).mean()
    loss.backward()
    assert model.node_head[0].weight.grad.abs().sum() > 0 and model.bond_head[0].weight.grad.abs().sum() > 0


def test_typed_samples_have_types_on_real_nodes_and_sampled_edges_only():
    model = _typed(max_nodes=7)
    s = model.sample(8, torch.tensor([3, 7]), generator=torch.Generator().manual_seed(0), types=True)
    adj, counts = model.sample(8, torch.tensor([3, 7]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(s.adj, adj) and torch.equal(s.counts, counts)  # the types come after the same draw
    assert s.node_types.shape == (8, 7) and s.bond_types.shape == (8, 7, 7)
    assert int(s.node_types.max()) < 4 and int(s.bond_types.max()) < 3
    assert torch.equal(s.bond_types, s.bond_types.transpose(1, 2))
    assert ((s.bond_types > 0) <= (s.adj > 0)).all()
    for nt, n in zip(s.node_types, counts.tolist(), strict=True):
        assert nt[n:].sum() == 0
    assert len(set(s.node_types[counts == 7].flatten().tolist())) > 1  # types are drawn, not constant


def test_untyped_model_is_unchanged_and_bad_type_counts_are_refused():
    torch.manual_seed(0)
    plain = create_model("graph_vae", num_node_features=3, hidden=8, layers=2)
    assert plain.node_head is None and plain.bond_head is None
    out = plain(*plain.example_input(2))
    assert out.node_type_logits is None and out.bond_logits is None
    assert set(plain.neg_elbo(out, plain.example_input(2)[0])) == {"recon", "kl_graph", "kl_nodes"}
    torch.manual_seed(0)
    typed = create_model("graph_vae", num_node_features=3, hidden=8, layers=2, node_types=3, edge_types=2)
    for (name, p), q in zip(plain.named_parameters(), typed.parameters(), strict=False):  # same init, then heads
        assert torch.equal(p, q), name
    with pytest.raises(UserError):
        create_model("graph_vae", num_node_features=3, node_types=1)
