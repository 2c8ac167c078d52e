"""GAE and VGAE: the loss against a hand computation on a tiny graph, the encoder against written-out GCN layers."""

from __future__ import annotations

import math

import pytest
import torch

from archzoo.errors import UserError
from archzoo.registry import create_model


def _tiny():
    """A 5-node graph: a 4-cycle 0-1-2-3 and a pendant 4 on node 0."""
    from torch_geometric.data import Data

    e = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 4]])
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    return Data(x=x, edge_index=torch.cat([e, e.flip(0)], 1))


POS = torch.tensor([[0, 1], [1, 2]])  # edges 0-1, 1-2
NEG = torch.tensor([[0, 2, 4], [2, 4, 3]])  # non-edges 0-2, 2-4, 4-3


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_vgae_loss_is_the_written_out_elbo():
    torch.manual_seed(0)
    model = create_model("vgae", num_node_features=3, hidden=4, latent=2).train()
    data = _tiny()
    z = model(data)  # a sample from q(Z)
    loss, logs = model.loss(z, POS, NEG)
    mu, logstd = model.ae.encoder(data.x, data.edge_index)
    zz = z.tolist()

    def dot(i: int, j: int) -> float:
        return sum(a * b for a, b in zip(zz[i], zz[j], strict=True))

    pos = -sum(math.log(_sigmoid(dot(i, j))) for i, j in POS.T.tolist()) / 2
    neg = -sum(math.log(1 - _sigmoid(dot(i, j))) for i, j in NEG.T.tolist()) / 3
    kl_nodes = [
        -0.5 * sum(1 + 2 * s - m**2 - math.exp(s) ** 2 for m, s in zip(mr, sr, strict=True))
        for mr, sr in zip(mu.tolist(), logstd.tolist(), strict=True)
    ]
    kl = sum(kl_nodes) / 5  # mean over the 5 nodes
    assert float(logs["recon"]) == pytest.approx(pos + neg, abs=1e-5)
    assert float(logs["kl"]) == pytest.approx(kl, abs=1e-5)
    assert float(loss) == pytest.approx(pos + neg + kl / 5, abs=1e-5)  # KL weighted by 1/N


def test_vgae_samples_in_training_and_returns_the_mean_in_eval():
    torch.manual_seed(0)
    model = create_model("vgae", num_node_features=3, hidden=4, latent=2)
    data = _tiny()
    mu, logstd = model.ae.encoder(data.x, data.edge_index)
    assert torch.allclose(model.eval()(data), mu, atol=1e-6)
    assert not torch.allclose(model.train()(data), mu, atol=1e-3)
    assert torch.allclose(model.forward_features(data), mu, atol=1e-6)
    z = model.eval()(data)
    assert torch.allclose(model.score(z, POS), (z[POS[0]] * z[POS[1]]).sum(1), atol=1e-6)


def test_gae_loss_has_no_kl_and_is_deterministic():
    torch.manual_seed(0)
    model = create_model("gae", num_node_features=3, hidden=4, latent=2).train()
    data = _tiny()
    z1, z2 = model(data), model(data)
    assert torch.equal(z1, z2)
    loss, logs = model.loss(z1, POS, NEG)
    assert set(logs) == {"recon"}
    s = model.score(z1, torch.cat([POS, NEG], 1)).detach()
    want = -torch.log(torch.sigmoid(s[:2])).mean() - torch.log(1 - torch.sigmoid(s[2:])).mean()
    assert float(loss) == pytest.approx(float(want), abs=1e-5)


def test_encoder_is_two_gcn_layers():
    """mu = Â relu(Â X W0 + b0) Wmu + bmu with Â the symmetric normalisation of A + I, written out densely."""
    torch.manual_seed(0)
    model = create_model("gae", num_node_features=3, hidden=4, latent=2)
    data = _tiny()
    n = 5
    a = torch.zeros(n, n)
    a[data.edge_index[0], data.edge_index[1]] = 1.0
    a_hat = a + torch.eye(n)
    d = a_hat.sum(1).pow(-0.5)
    norm = d[:, None] * a_hat * d[None, :]
    enc = model.ae.encoder
    h = torch.relu(norm @ enc.conv1.lin(data.x) + enc.conv1.bias)
    mu = norm @ enc.conv_mu.lin(h) + enc.conv_mu.bias
    assert torch.allclose(model(data), mu, atol=1e-5)


def test_full_reconstruction_is_the_papers_weighted_cross_entropy():
    from archzoo.models.vgae import full_recon_loss

    torch.manual_seed(0)
    data = _tiny()
    z = torch.randn(5, 2)
    a = torch.eye(5)
    a[data.edge_index[0], data.edge_index[1]] = 1.0  # A + I: 10 + 5 ones of 25
    w, c = (25 - 15) / 15, 25 / (2 * (25 - 15))
    total = 0.0
    for i in range(5):
        for j in range(5):
            p = _sigmoid(float(z[i] @ z[j]))
            total += w * math.log(p) if a[i, j] else math.log(1 - p)
    assert float(full_recon_loss(z, data.edge_index)) == pytest.approx(-c * total / 25, abs=1e-5)
    model = create_model("vgae", num_node_features=3, hidden=4, latent=2, recon="full").train()
    zz = model(data)
    loss, logs = model.loss(zz, POS, NEG, data.edge_index)
    assert float(logs["recon"]) == pytest.approx(float(full_recon_loss(zz, data.edge_index)), abs=1e-6)
    with pytest.raises(UserError):
        create_model("vgae", num_node_features=3, recon="all")
