"""Tests for archzoo.models.vqvae: nearest codes, straight-through gradients, losses, EMA, perplexity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.models.vqvae import VQVAE, VectorQuantizer
from archzoo.registry import create_model


def _quantizer(ema: bool = False, decay: float = 0.99) -> VectorQuantizer:
    q = VectorQuantizer(num_codes=3, code_dim=2, ema=ema, decay=decay, eps=1e-8)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        if ema:
            q.ema_sum.copy_(q.codebook)
    return q


def _grid(points: list[list[float]]) -> torch.Tensor:
    """Points (N, 2) as a (1, 2, 1, N) latent map."""
    return torch.tensor(points).t().reshape(1, 2, 1, -1)


def test_nearest_code_and_losses() -> None:
    q = _quantizer()
    z_e = _grid([[0.1, -0.1], [0.9, 0.2], [0.2, 0.7], [0.6, 0.5]])
    out = q(z_e)
    assert out.indices.tolist() == [[[0, 1, 2, 1]]]  # (0.6, 0.5) is nearest to (1, 0)
    expected = q.codebook[out.indices.flatten()].t().reshape(1, 2, 1, -1)
    torch.testing.assert_close(out.z_q, expected)  # forward value is the code
    torch.testing.assert_close(out.commitment_loss, F.mse_loss(z_e, expected))
    torch.testing.assert_close(out.codebook_loss, F.mse_loss(expected, z_e))


def test_straight_through_gradient_is_identity_and_codebook_loss_trains_codes() -> None:
    q = _quantizer()
    z_e = _grid([[0.1, -0.1], [0.9, 0.2]]).requires_grad_()
    out = q(z_e)
    w = torch.randn_like(z_e)
    (out.z_q * w).sum().backward()
    torch.testing.assert_close(z_e.grad, w)  # d z_q / d z_e = I
    assert q.codebook.grad is None  # the straight-through path does not touch the codebook
    z_e.grad = None
    q(z_e).codebook_loss.backward()
    assert z_e.grad is None or float(z_e.grad.abs().sum()) == 0.0  # sg[z_e]
    assert float(q.codebook.grad.abs().sum()) > 0


def test_straight_through_gradient_reaches_the_encoder() -> None:
    torch.manual_seed(0)
    m = VQVAE(1, 8, hidden=8, res_hidden=4, num_res_blocks=1, downsample=1, num_codes=8, code_dim=4)
    x = torch.rand(2, 1, 8, 8)
    out = m(x)
    F.mse_loss(out.recon, x).backward()  # reconstruction only: no commitment term
    g = m.encoder[0].weight.grad
    assert g is not None and torch.isfinite(g).all() and float(g.abs().sum()) > 0


def test_ema_update_moves_codes_to_assigned_means() -> None:
    q = _quantizer(ema=True, decay=0.0)
    z_e = _grid([[0.2, 0.0], [0.0, 0.2], [0.8, 0.2], [1.2, 0.0], [0.1, 0.9]])
    q.train()
    out = q(z_e)
    assert out.codebook_loss.item() == 0.0
    assert out.indices.tolist() == [[[0, 0, 1, 1, 2]]]
    torch.testing.assert_close(q.codebook, torch.tensor([[0.1, 0.1], [1.0, 0.1], [0.1, 0.9]]), atol=1e-5, rtol=0)
    before = q.codebook.clone()
    q.eval()
    q(z_e)
    assert torch.equal(q.codebook, before)  # no update in eval mode


def test_perplexity() -> None:
    q = _quantizer()
    assert q(_grid([[0.0, 0.1]] * 4)).perplexity.item() == pytest.approx(1.0)
    assert q(_grid([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])).perplexity.item() == pytest.approx(3.0, abs=1e-4)


def test_vqvae_shapes_and_sample() -> None:
    m = create_model("vqvae", hidden=16, num_codes=16, code_dim=8)
    x = torch.rand(2, 1, 28, 28)
    out = m(x)
    assert out.recon.shape == x.shape and out.indices.shape == (2, 7, 7)
    assert m.encode(x).shape == (2, 7, 7)
    assert m.decode(out.indices).shape == x.shape
    s = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 28, 28) and 0.0 <= float(s.min()) and float(s.max()) <= 1.0
    ema = create_model("vqvae", hidden=16, num_codes=16, code_dim=8, ema=True)
    assert not any(p is ema.quantizer.codebook for p in ema.parameters())  # a buffer, not trained by gradients


def test_dead_codes_restart_at_encoder_outputs() -> None:
    # Every encoder output sits near (5, -5): only code (1, 0) is ever chosen, the others are dead.
    torch.manual_seed(0)
    z_e = (torch.tensor([5.0, -5.0]) + 0.1 * torch.randn(64, 2)).t().reshape(1, 2, 1, -1)
    plain = _quantizer(ema=True, decay=0.5)
    plain.train()
    for _ in range(5):
        plain(z_e)
    assert plain(z_e).indices.unique().numel() == 1  # collapse: one code in use
    q = VectorQuantizer(num_codes=3, code_dim=2, ema=True, decay=0.5, eps=1e-8, restart_threshold=1.0)
    q.load_state_dict(_quantizer(ema=True).state_dict())
    q.train()
    q(z_e)
    flat = z_e.reshape(2, -1).t()
    # Only the dead codes took the restart counts; the live code kept its EMA count and its
    # EMA value, a blend that is no single encoder output ...
    assert torch.equal(q.ema_count[[0, 2]], torch.ones(2)) and q.ema_count[1] > 1.0
    assert (flat - q.codebook[1]).norm(dim=1).min() > 1e-3
    # ... while the two unused codes were moved onto encoder outputs of the batch ...
    for code in q.codebook[[0, 2]]:
        assert (flat - code).norm(dim=1).min() < 1e-5
    # ... so the codebook is used again.
    assert q(z_e).indices.unique().numel() == 3


def test_restarts_need_ema() -> None:
    from archzoo.errors import UserError

    with pytest.raises(UserError, match="restart_threshold"):
        VectorQuantizer(num_codes=3, code_dim=2, ema=False, restart_threshold=1.0)
    assert create_model("vqvae", ema=True, restart_threshold=1.0).quantizer.restart_threshold == 1.0
