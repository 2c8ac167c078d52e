"""Graph generation: graph statistics and MMD on known cases, the graph VAE's loss and samples, `archzoo sample`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.tasks.graph_generation import (
    clustering,
    clustering_histogram,
    degree_histogram,
    edge_density,
    erdos_renyi,
    mmd,
)


def _adj(n: int, edges: list[tuple[int, int]]) -> torch.Tensor:
    a = torch.zeros(n, n)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    return a


# A triangle 0-1-2 with a tail 2-3-4 and an isolated node 5.
KITE = _adj(6, [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4)])


def test_degree_and_clustering_agree_with_networkx():
    import networkx as nx

    g = nx.from_numpy_array(KITE.numpy())
    assert degree_histogram(KITE).tolist() == [float(c) for c in nx.degree_histogram(g)]
    want = [nx.clustering(g)[v] for v in range(6)]
    assert clustering(KITE).tolist() == pytest.approx(want)  # [1, 1, 1/3, 0, 0, 0]
    h = clustering_histogram(KITE)
    assert h.sum() == 6 and h[0] == 3 and h[33] == 1 and h[99] == 2


def test_mmd_is_zero_for_equal_sets_and_matches_a_hand_computed_case():
    rings = [_adj(n, [(i, (i + 1) % n) for i in range(n)]) for n in (5, 6, 7)]
    hs = [degree_histogram(a) for a in rings]
    assert mmd(hs, hs) == pytest.approx(0.0, abs=1e-12)
    # One histogram each, all mass at degree 0 against all at degree 1: TV 1, so 2 - 2 exp(-1/2).
    x, y = [torch.tensor([3.0])], [torch.tensor([0.0, 4.0])]
    assert mmd(x, y, sigma=1.0) == pytest.approx(2 - 2 * math.exp(-0.5), abs=1e-12)
    assert mmd(x, y, sigma=1.0) == pytest.approx(mmd(y, x, sigma=1.0))
    with pytest.raises(UserError):
        mmd([], hs)


def test_mmd_grows_as_the_distributions_part():
    g = torch.Generator().manual_seed(0)
    sparse_a = erdos_renyi([16] * 30, 0.1, g)
    sparse_b = erdos_renyi([16] * 30, 0.1, g)
    dense = erdos_renyi([16] * 30, 0.5, g)
    deg = lambda adjs: [degree_histogram(a) for a in adjs]  # noqa: E731
    close, far = mmd(deg(sparse_a), deg(sparse_b)), mmd(deg(sparse_a), deg(dense))
    assert 0 <= close < far
    assert far > 5 * close
    cl = lambda adjs: [clustering_histogram(a) for a in adjs]  # noqa: E731
    assert mmd(cl(sparse_a), cl(sparse_b), 0.1) < mmd(cl(sparse_a), cl(dense), 0.1)


def test_erdos_renyi_matches_the_density():
    g = torch.Generator().manual_seed(0)
    adjs = erdos_renyi([20] * 50, 0.3, g)
    assert all(torch.equal(a, a.T) and a.diagonal().sum() == 0 for a in adjs)
    assert edge_density(adjs) == pytest.approx(0.3, abs=0.02)
    assert edge_density([KITE]) == pytest.approx(5 / 15)


def test_community_small_graphs():
    from archzoo.data.graphgen import community_small

    bundle = community_small(n_graphs=20, val_fraction=0.25, test_fraction=0.25)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (10, 5, 5)
    assert bundle.info["train_sizes"] == [d.num_nodes for d in bundle.train.data_list]
    for d in bundle.train.data_list + bundle.test.data_list:
        assert 12 <= d.num_nodes <= 20
        assert d.x.shape == (d.num_nodes, 20)
        assert torch.equal(d.x.argmax(1), torch.bincount(d.edge_index[0], minlength=d.num_nodes))
    again = community_small(n_graphs=20, val_fraction=0.25, test_fraction=0.25)
    assert torch.equal(again.test.data_list[0].edge_index, bundle.test.data_list[0].edge_index)
    with pytest.raises(UserError):
        community_small(min_community=1)


def test_graph_vae_loss_terms_are_the_written_out_ones():
    from torch_geometric.data import Batch, Data

    from archzoo.registry import create_model

    torch.manual_seed(0)
    model = create_model("graph_vae", num_node_features=3, hidden=8, layers=2, latent=4, graph_latent=3).eval()
    g1 = Data(x=torch.randn(3, 3), edge_index=torch.tensor([[0, 1], [1, 0]]))  # 0-1 and an isolated node
    g2 = Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1, 2, 1, 2, 3], [1, 2, 3, 0, 1, 2]]))  # a path
    batch = Batch.from_data_list([g1, g2])
    out = model(batch)
    terms = model.neg_elbo(out, batch)
    assert out.edge_logits.shape == (2, 4, 4)
    assert torch.allclose(out.edge_logits, out.edge_logits.transpose(1, 2), atol=1e-6)
    adjs = [_adj(3, [(0, 1)]), _adj(4, [(0, 1), (1, 2), (2, 3)])]
    for g, a in enumerate(adjs):
        n = a.size(0)
        want = 0.0
        for i in range(n):
            for j in range(i + 1, n):
                p = torch.sigmoid(out.edge_logits[g, i, j])
                want -= float(torch.log(p) if a[i, j] else torch.log(1 - p))
        assert float(terms["recon"][g]) == pytest.approx(want, abs=1e-4)
    # KL(N(mu, s^2) || N(0, 1)) of the graph latents, written out per dimension.
    mu, ls = out.graph_mu, out.graph_logstd
    want_kl = (0.5 * (mu**2 + torch.exp(2 * ls)) - ls - 0.5).sum(1)
    assert torch.allclose(terms["kl_graph"], want_kl, atol=1e-5)
    assert (terms["kl_nodes"] >= 0).all()


def test_graph_vae_samples_are_symmetric_graphs_of_the_given_sizes():
    from archzoo.registry import create_model

    torch.manual_seed(0)
    model = create_model("graph_vae", num_node_features=3, max_nodes=9, hidden=8, layers=2)
    adj, counts = model.sample(6, torch.tensor([5, 9]), generator=torch.Generator().manual_seed(1))
    assert adj.shape == (6, 9, 9) and set(counts.tolist()) <= {5, 9}
    assert torch.equal(adj, adj.transpose(1, 2)) and adj.diagonal(dim1=1, dim2=2).sum() == 0
    for a, n in zip(adj, counts.tolist(), strict=True):
        assert a[n:].sum() == 0 and a[:, n:].sum() == 0  # padding holds no edge
    again, _ = model.sample(6, torch.tensor([5, 9]), generator=torch.Generator().manual_seed(1))
    assert torch.equal(adj, again)


def test_archzoo_sample_writes_edge_lists_and_a_drawing(tmp_path: Path):
    from archzoo.cli import main

    run = tmp_path / "run"
    rc = main(
        ["train", "community-graph-vae", "train.epochs=2", "data.args.n_graphs=30", "log.progress=none",
         "log.plots=false", "train.threads=1", "--run-dir", str(run)]
    )  # fmt: skip
    assert rc == 0
    out = tmp_path / "samples"
    assert main(["sample", str(run), "--n", "4", "--seed", "3", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["graph_000.txt", "graph_001.txt", "graph_002.txt", "graph_003.txt", "graphs.png"]
    assert (out / "graphs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (out / "graph_000.txt").read_text().splitlines()
    n = int(lines[0].split()[-1])
    assert lines[0] == f"# nodes {n}" and 12 <= n <= 20
    for line in lines[1:]:
        i, j = map(int, line.split())
        assert 0 <= i < j < n
    assert main(["sample", str(run), "--n", "0", "--out", str(out)]) == 2


def test_graph_vae_mixture_prior_and_random_features():
    from torch_geometric.data import Batch

    from archzoo.registry import create_model

    torch.manual_seed(0)
    model = create_model("graph_vae", num_node_features=3, max_nodes=6, hidden=8, layers=2, components=3,
                         random_features=2).train()  # fmt: skip
    batch = Batch.from_data_list(model.example_input(3)[0].to_data_list())
    out = model(batch)
    assert out.prior_mu.shape == (batch.num_nodes, 3, 16) and out.prior_logits.shape == (batch.num_nodes, 3)
    terms = model.neg_elbo(out, batch)
    assert all(torch.isfinite(v).all() and v.shape == (3,) for v in terms.values())
    # The node KL estimate is log q(z) - log p(z) at the decoded latents, summed over graph 0's nodes.
    normal = lambda x, m, s: torch.distributions.Normal(m, s.exp()).log_prob(x).sum()  # noqa: E731
    want = 0.0
    for i in (batch.batch == 0).nonzero().flatten().tolist():
        z = out.z[i]
        log_p = torch.logsumexp(
            torch.stack([normal(z, out.prior_mu[i, k], out.prior_logstd[i, k]) for k in range(3)])
            + out.prior_logits[i].log_softmax(0),
            0,
        )
        want += float(normal(z, out.mu[i], out.logstd[i]) - log_p)
    assert float(terms["kl_nodes"][0]) == pytest.approx(want, abs=1e-4)
    adj, counts = model.sample(5, torch.tensor([4, 6]), generator=torch.Generator().manual_seed(0))
    assert adj.shape == (5, 6, 6) and torch.equal(adj, adj.transpose(1, 2))
    with pytest.raises(UserError):
        create_model("graph_vae", num_node_features=3, components=0)


# ----------------------------------------------------------------------------- molecules

BONDS = ("SINGLE", "DOUBLE", "TRIPLE")


def _mol(atoms: list[str], bonds: list[tuple[int, int, int]]):
    from archzoo.tasks.graph_generation import to_molecule

    n = len(atoms)
    a, t = torch.zeros(n, n), torch.zeros(n, n, dtype=torch.long)
    for i, j, k in bonds:
        a[i, j] = a[j, i] = 1.0
        t[i, j] = t[j, i] = k
    return to_molecule(a, atoms, t, BONDS)


def test_molecule_smiles_accepts_a_ring_and_rejects_overvalence_and_fragments():
    from archzoo.tasks.graph_generation import molecule_smiles

    benzene = _mol(["C"] * 6, [(i, (i + 1) % 6, i % 2) for i in range(6)])  # kekulé: alternating 1 and 2
    assert molecule_smiles(benzene) == "c1ccccc1"  # sanitising perceives the aromatic ring
    assert molecule_smiles(_mol(["C", "C", "O"], [(0, 1, 0), (1, 2, 0)])) == "CCO"
    five = _mol(["C"] * 6, [(0, j, 0) for j in range(1, 6)])  # a carbon with five bonds
    assert molecule_smiles(five) is None
    assert molecule_smiles(_mol(["C", "O"], [(0, 1, 2)])) is None  # C#O without charges: O over-valent
    assert molecule_smiles(_mol(["C", "C", "O"], [(0, 1, 0)])) is None  # ethane and a lone water: two fragments
    assert benzene.GetNumAtoms() == 6 and not benzene.GetAtomWithIdx(0).GetIsAromatic()  # a copy was sanitised


def test_molecule_scores_count_valid_unique_and_novel():
    from archzoo.tasks.graph_generation import molecule_scores

    s = molecule_scores(["CCO", "CCO", None, "c1ccccc1", None], train_smiles=["CCO"])
    assert s["validity"] == pytest.approx(3 / 5)
    assert s["uniqueness"] == pytest.approx(2 / 3)
    assert s["novelty"] == pytest.approx(1 / 2)
    assert molecule_scores([None], [])["uniqueness"] == 0.0
    with pytest.raises(UserError):
        molecule_scores([], [])


def test_random_molecules_match_density_and_marginals():
    from archzoo.tasks.graph_generation import random_molecules

    g = torch.Generator().manual_seed(0)
    p_node, p_edge = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.8, 0.2, 0.0])
    graphs = random_molecules([15] * 200, 0.2, p_node, p_edge, g)
    assert edge_density([a for a, _, _ in graphs]) == pytest.approx(0.2, abs=0.01)
    nodes = torch.cat([nt for _, nt, _ in graphs])
    assert torch.bincount(nodes, minlength=3).double().div(len(nodes)).tolist() == pytest.approx(
        [0.7, 0.2, 0.1], abs=0.02
    )
    for a, _, bt in graphs:
        assert torch.equal(bt, bt.T) and ((bt > 0) <= (a > 0)).all()  # types only on edges
    kinds = torch.cat([bt[torch.triu(a, 1) > 0] for a, _, bt in graphs])
    assert float((kinds == 1).double().mean()) == pytest.approx(0.2, abs=0.02) and not (kinds == 2).any()


def test_molecule_graphs_labels_and_split():
    from rdkit import Chem

    from archzoo.data.graphgen import MOLGEN_BONDS, MOLGEN_ELEMENTS, molecule_graphs
    from archzoo.tasks.graph_generation import molecule_smiles, to_molecule

    bundle = molecule_graphs(source="tpsa", max_atoms=12, max_molecules=60)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (48, 6, 6)
    info = bundle.info
    assert info["node_types"] == len(MOLGEN_ELEMENTS) and info["edge_types"] == len(MOLGEN_BONDS) == 3
    assert info["train_sizes"] == [d.num_nodes for d in bundle.train.data_list]
    for d in bundle.train.data_list:
        assert 2 <= d.num_nodes <= 12 and d.node_type.shape == (d.num_nodes,)
        a = torch.zeros(d.num_nodes, d.num_nodes)
        t = torch.zeros(d.num_nodes, d.num_nodes, dtype=torch.long)
        a[d.edge_index[0], d.edge_index[1]] = 1.0
        t[d.edge_index[0], d.edge_index[1]] = d.edge_type
        mol = to_molecule(a, [MOLGEN_ELEMENTS[i] for i in d.node_type], t, MOLGEN_BONDS)
        assert molecule_smiles(mol) == d.smiles == Chem.MolToSmiles(Chem.MolFromSmiles(d.smiles))  # labels round-trip
    assert sorted(d.smiles for d in bundle.train.data_list) == info["train_smiles"]
    again = molecule_graphs(source="tpsa", max_atoms=12, max_molecules=60)
    assert [d.smiles for d in again.test.data_list] == [d.smiles for d in bundle.test.data_list]
    with pytest.raises(UserError):
        molecule_graphs(source="qm9")


def test_archzoo_sample_writes_smiles_for_molecules(tmp_path: Path):
    from archzoo.cli import main

    run = tmp_path / "run"
    rc = main(
        ["train", "molecules-graph-vae", "data.args.source=tpsa", "data.args.max_atoms=10", "data.args.max_molecules=40",
         "train.epochs=1", "log.progress=none", "log.plots=false", "train.threads=1", "--run-dir", str(run)]
    )  # fmt: skip
    assert rc == 0
    out = tmp_path / "samples"
    assert main(["sample", str(run), "--n", "5", "--seed", "0", "--out", str(out)]) == 0
    assert (out / "graphs.png").is_file() and len(list(out.glob("graph_*.txt"))) == 5
    lines = (out / "smiles.txt").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [f"graph_{i:03d}" for i in range(5)]
    for ln in lines:
        parts = ln.split("\t")
        assert len(parts) == 2 or (len(parts) == 3 and parts[1] == "INVALID")
    edges = (out / "graph_000.txt").read_text().splitlines()
    n = int(edges[0].split()[-1])
    assert edges[1].startswith("# atoms ") and len(edges[1].split()) == 2 + n
    for line in edges[2:]:
        i, j, kind = line.split()
        assert 0 <= int(i) < int(j) < n and kind in ("SINGLE", "DOUBLE", "TRIPLE")
