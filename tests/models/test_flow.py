"""Tests for archzoo.models.flow: exact log-likelihood by change of variables, invertibility, masks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from archzoo.errors import UserError
from archzoo.models.flow import RealNVP2D, RealNVPImage, checkerboard, squeeze, unsqueeze
from archzoo.registry import create_model


def _perturb(m: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Random weights everywhere, so the couplings are far from the identity they start as."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * std)
    return m


def test_2d_log_prob_equals_change_of_variables_with_autograd_jacobian() -> None:
    m = _perturb(RealNVP2D(num_layers=4, hidden=16)).double()
    x = torch.tensor([[0.3, -1.2], [1.5, 0.4]], dtype=torch.float64)
    lp = m.log_prob(x)
    for i in range(2):
        f = lambda v: m(v[None])[0][0]  # noqa: E731 - R^2 -> R^2
        jac = jacobian(f, x[i])  # (2, 2)
        z = f(x[i])
        expected = -0.5 * (z.pow(2).sum() + 2 * math.log(2 * math.pi)) + torch.slogdet(jac).logabsdet
        torch.testing.assert_close(lp[i], expected, atol=1e-4, rtol=0)


def test_2d_inverse_and_identity_at_init() -> None:
    m = RealNVP2D(num_layers=4, hidden=16)
    x = torch.randn(5, 2)
    z, log_det = m(x)
    torch.testing.assert_close(z, x)  # zero-initialised conditioners
    assert torch.equal(log_det, torch.zeros(5))
    _perturb(m)
    z, _ = m(x)
    torch.testing.assert_close(m.inverse(z), x, atol=1e-5, rtol=1e-5)
    s = m.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 2)


def test_image_flow_log_det_equals_autograd_jacobian_and_inverts() -> None:
    m = _perturb(RealNVPImage(1, 4, num_scales=2, hidden=8, num_blocks=1), std=0.1).double()
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64) * 0.8 + 0.1
    z, log_det = m(x)
    assert z.shape == (1, 16)
    jac = jacobian(lambda v: m(v.reshape(1, 1, 4, 4))[0][0], x.flatten())  # (16, 16)
    torch.testing.assert_close(log_det[0], torch.slogdet(jac).logabsdet, atol=1e-4, rtol=0)
    torch.testing.assert_close(m.inverse(z), x, atol=1e-6, rtol=0)


def test_image_flow_shapes_and_sample_range() -> None:
    m = create_model("realnvp_image", hidden=8, num_blocks=1)
    x = torch.rand(2, 1, 28, 28) * 0.9 + 0.05
    assert m.log_prob(x).shape == (2,)
    assert m._latent_shapes() == [(2, 14, 14), (2, 14, 14)]
    s = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 28, 28) and 0.0 <= float(s.min()) and float(s.max()) <= 1.0
    assert m.data_range == (0.0, 1.0) and not m.is_conditional
    with pytest.raises(UserError):
        RealNVPImage(1, 30, num_scales=3)


def test_squeeze_and_masks() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    s = squeeze(x)
    assert s.shape == (1, 4, 2, 2)
    assert s[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the top-left 2x2 patch becomes 4 channels
    assert torch.equal(unsqueeze(s), x)
    assert checkerboard(1, 2, 3, 0)[0, 0].tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
