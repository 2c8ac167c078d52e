"""Tests for archzoo.models.diffusion: schedules, q(x_t | x_0), the posterior, DDPM/DDIM sampling, guidance."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models.diffusion import GaussianDiffusion, cosine_beta_schedule, linear_beta_schedule
from archzoo.models.unet import UNet
from archzoo.registry import create_model
from archzoo.utils import randn


def _tiny(timesteps: int = 10, num_classes: int = 0, schedule: str = "linear") -> GaussianDiffusion:
    torch.manual_seed(0)
    unet = UNet(1, 4, base_channels=8, channel_mults=(1,), num_res_blocks=1, dropout=0.0, num_classes=num_classes)
    torch.nn.init.normal_(unet.out[-1].weight, std=0.1)  # a non-zero noise prediction
    return GaussianDiffusion(unet, (1, 4, 4), timesteps, schedule).eval()


def test_linear_schedule_endpoints_and_scaling() -> None:
    b = linear_beta_schedule(1000)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    b100 = linear_beta_schedule(100)
    assert b100[0].item() == pytest.approx(1e-3) and b100[-1].item() == pytest.approx(0.2)


@pytest.mark.parametrize("timesteps", [10, 1000])
def test_cosine_alpha_bar_is_monotone_in_unit_interval(timesteps: int) -> None:
    betas = cosine_beta_schedule(timesteps)
    alpha_bar = torch.cumprod(1 - betas, 0)
    assert (alpha_bar > 0).all() and (alpha_bar < 1).all()
    assert (alpha_bar[1:] < alpha_bar[:-1]).all()
    assert float(betas.max()) <= 0.999


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_closed_form_marginal_matches_iterated_forward_process(schedule: str) -> None:
    d = _tiny(50, schedule=schedule)
    x0 = torch.randn(2, 1, 4, 4)
    mean, var = x0.double(), torch.zeros_like(x0, dtype=torch.float64)
    for t in range(d.timesteps):
        beta = d.betas[t].double()
        # q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
        mean, var = (1 - beta).sqrt() * mean, (1 - beta) * var + beta
        tt = torch.full((2,), t)
        m_t, v_t = d.q_mean_variance(x0, tt)
        torch.testing.assert_close(m_t.double(), mean, atol=1e-5, rtol=0)
        torch.testing.assert_close(v_t.double(), var, atol=1e-5, rtol=0)


def test_posterior_matches_bayes_rule() -> None:
    d = _tiny(20)
    x0, xt = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    for t in (1, 7, 19):
        a, beta = 1 - d.betas[t], d.betas[t]
        ab_prev = d.alphas_cumprod[t - 1]
        # product of N(x_t; sqrt(a) x_{t-1}, beta) and N(x_{t-1}; sqrt(ab_prev) x0, 1 - ab_prev)
        var = 1 / (a / beta + 1 / (1 - ab_prev))
        mean = var * (a.sqrt() * xt / beta + ab_prev.sqrt() * x0 / (1 - ab_prev))
        m, v = d.q_posterior(x0, xt, torch.tensor([t]))
        torch.testing.assert_close(m, mean, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(v, var.expand_as(v), atol=1e-6, rtol=1e-4)


def test_ddpm_step_is_the_posterior_given_predicted_x0() -> None:
    d = _tiny(20)
    d.clip_denoised = False
    xt, eps = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = 9
    noisy = d.reverse_step(xt, t, t - 1, eps, eta=1.0, generator=torch.Generator().manual_seed(0))
    z = randn(xt.shape, torch.Generator().manual_seed(0), "cpu")
    tt = torch.full((3,), t)
    mean, var = d.q_posterior(d.predict_x0(xt, tt, eps), xt, tt)
    torch.testing.assert_close(noisy, mean + var.sqrt() * z, atol=1e-5, rtol=1e-4)


def test_ddim_with_all_steps_and_eta_zero_is_deterministic() -> None:
    d = _tiny(10)
    x_T = torch.randn(2, 1, 4, 4)
    a = d.sample(2, steps=10, method="ddim", x_T=x_T, generator=torch.Generator().manual_seed(1))
    b = d.sample(2, steps=10, method="ddim", x_T=x_T, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    c = d.sample(2, method="ddpm", x_T=x_T, generator=torch.Generator().manual_seed(1))
    e = d.sample(2, method="ddpm", x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(c, e)  # ancestral sampling draws fresh noise


def test_guidance_zero_is_the_conditional_prediction() -> None:
    d = _tiny(10, num_classes=3)
    torch.nn.init.normal_(d.model.class_emb.weight)
    x, t, y = torch.randn(2, 1, 4, 4), torch.tensor([3, 8]), torch.tensor([0, 2])
    cond, uncond = d(x, t, y), d(x, t, None)
    torch.testing.assert_close(d.guided_eps(x, t, y, guidance=0.0), cond)
    torch.testing.assert_close(d.guided_eps(x, t, y, guidance=2.0), 3 * cond - 2 * uncond, atol=1e-5, rtol=1e-5)


def test_sample_shape_range_and_arguments() -> None:
    d = _tiny(10, num_classes=3)
    s = d.sample(4, steps=3, guidance=1.5, method="ddim", generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 4, 4) and float(s.abs().max()) <= 1.0
    assert d.timestep_sequence(None).tolist() == list(range(10))
    assert d.timestep_sequence(4).tolist() == [0, 3, 6, 9]
    with pytest.raises(UserError):
        d.sample(1, method="euler")
    with pytest.raises(UserError):
        d.sample(1, steps=11)


def test_registered_builder() -> None:
    m = create_model("ddpm_unet", base_channels=8, num_res_blocks=1, timesteps=100, schedule="cosine")
    assert not m.is_conditional and m.data_range == (-1.0, 1.0) and m.alphas_cumprod.shape == (100,)
    c = create_model("ddpm_unet", num_classes=10, class_cond=True, base_channels=8, num_res_blocks=1, timesteps=10)
    assert c.is_conditional and c.num_classes == 10
    out = c(torch.randn(2, 1, 28, 28), torch.tensor([0, 9]), torch.tensor([1, 10]))
    assert out.shape == (2, 1, 28, 28)
