"""Tests for archzoo.models.vae: shapes, the reparameterisation, closed-form KL vs Monte Carlo, likelihoods."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from archzoo.errors import UserError
from archzoo.models.vae import MLPVAE, VAE, ConvVAE
from archzoo.registry import create_model


@pytest.mark.parametrize("name", ["vae_mlp", "vae_conv"])
def test_shapes_and_sample_range(name: str) -> None:
    m = create_model(name, latent_dim=5)
    x = torch.rand(4, 1, 28, 28)
    out = m(x)
    assert out.out.shape == x.shape
    assert out.mu.shape == out.logvar.shape == out.z.shape == (4, 5)
    assert m.reconstruct(x).shape == x.shape
    s = m.sample(6, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, 1, 28, 28)
    assert 0.0 <= float(s.min()) and float(s.max()) <= 1.0
    assert m.is_conditional is False and m.num_classes == 0


def test_conv_vae_on_32x32_rgb() -> None:
    m = ConvVAE(3, 32, channels=(8, 16), latent_dim=4)
    assert m(torch.rand(2, 3, 32, 32)).out.shape == (2, 3, 32, 32)


def test_sample_is_seeded_by_the_generator() -> None:
    m = MLPVAE(1, 4, hidden_dims=(8,), latent_dim=2).eval()
    a = m.sample(3, generator=torch.Generator().manual_seed(1))
    b = m.sample(3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_reparameterisation_moments() -> None:
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(0.25)]])
    z = VAE.reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2), torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.01, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01, rtol=0)
    # the sample is differentiable in mu and logvar
    mu_r, lv_r = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    VAE.reparameterize(mu_r, lv_r).sum().backward()
    assert mu_r.grad is not None and lv_r.grad is not None


def test_closed_form_kl_matches_monte_carlo() -> None:
    mu = torch.tensor([[0.5, -1.0, 0.0], [2.0, 0.3, -0.7]])
    logvar = torch.tensor([[0.0, -1.0, 0.7], [-0.5, 0.2, 0.0]])
    exact = VAE.kl_divergence(mu, logvar)  # (2,)
    n = 100_000
    g = torch.Generator().manual_seed(0)
    z = VAE.reparameterize(mu.expand(n, 2, 3), logvar.expand(n, 2, 3), g)  # (n, 2, 3)
    mc = (VAE.log_posterior(z, mu, logvar) - VAE.log_prior(z)).mean(0)  # E_q[log q - log p]
    torch.testing.assert_close(mc, exact, atol=0.03, rtol=0)
    assert torch.allclose(VAE.kl_divergence(torch.zeros(1, 4), torch.zeros(1, 4)), torch.zeros(1))


def test_log_densities_match_torch_distributions() -> None:
    z = torch.randn(5, 3)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    ref_q = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    torch.testing.assert_close(VAE.log_posterior(z, mu, logvar), ref_q)
    torch.testing.assert_close(VAE.log_prior(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_likelihoods_match_torch_distributions() -> None:
    x = torch.rand(3, 1, 4, 4)
    out = torch.randn(3, 1, 4, 4)
    bern = MLPVAE(1, 4, hidden_dims=(8,), latent_dim=2, likelihood="bernoulli")
    ref = Bernoulli(logits=out, validate_args=False).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bern.log_likelihood(x, out), ref)
    gauss = MLPVAE(1, 4, hidden_dims=(8,), latent_dim=2, likelihood="gaussian", obs_std=0.3)
    ref = Normal(torch.sigmoid(out), 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gauss.log_likelihood(x, out), ref)


def test_bad_arguments() -> None:
    with pytest.raises(UserError, match="likelihood"):
        MLPVAE(likelihood="poisson")
    with pytest.raises(UserError, match="obs_std"):
        MLPVAE(likelihood="gaussian", obs_std=0.0)
