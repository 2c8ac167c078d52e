r"""DDPM: a noise schedule, the forward process and ancestral / DDIM sampling around a U-Net.

Ho, Jain & Abbeel, *Denoising Diffusion Probabilistic Models* (2020),
https://arxiv.org/abs/2006.11239. The forward process adds Gaussian noise with
variances :math:`\beta_1, \dots, \beta_T`:

.. math::
    q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1 - \beta_t}\, x_{t-1}, \beta_t I), \qquad
    q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I),

with :math:`\alpha_t = 1 - \beta_t` and :math:`\bar\alpha_t = \prod_{s \le t} \alpha_s`.
A network :math:`\epsilon_\theta(x_t, t)` learns to predict the noise in
:math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon` (the loss is
in :mod:`archzoo.tasks.diffusion`). Sampling runs the reverse process either
ancestrally (DDPM) or with DDIM's deterministic update (Song, Meng & Ermon,
2021, https://arxiv.org/abs/2010.02502) on a subsequence of timesteps, with
optional classifier-free guidance (Ho & Salimans, 2022, https://arxiv.org/abs/2207.12598).

Timesteps are 0-based in code: index ``t`` = 0..T-1 is the paper's :math:`t + 1`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.checkpoint import GradCheckpointing
from archzoo.models._variant import variant
from archzoo.models.unet import UNet
from archzoo.registry import register_model
from archzoo.utils import image_hw, randn

SCHEDULES = ("linear", "cosine")


def linear_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    r""":math:`\beta_t` linear from ``beta_start`` to ``beta_end`` (DDPM's 1e-4 to 0.02 for :math:`T = 1000`).

    For other :math:`T` both ends are scaled by :math:`1000 / T` (Nichol & Dhariwal, 2021), so that
    :math:`\bar\alpha_T` stays near 0, and clipped to :math:`\le 0.999`. Returned in float64, shape :math:`(T,)`.
    """
    scale = 1000.0 / timesteps
    return torch.linspace(beta_start * scale, beta_end * scale, timesteps, dtype=torch.float64).clamp(max=0.999)


def cosine_beta_schedule(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    r"""The cosine schedule of Nichol & Dhariwal (2021), https://arxiv.org/abs/2102.09672.

    .. math::
        \bar\alpha_t = \frac{f(t)}{f(0)}, \quad f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\Big), \quad
        \beta_t = 1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}} \ \text{clipped to}\ \le 0.999.

    Returned in float64, shape :math:`(T,)`.
    """
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps  # t/T for t = 0..T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2).pow(2)
    alpha_bar = f / f[0]  # (T+1,), alpha_bar[0] = 1
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)


def _gather(buf: Tensor, t: Tensor, ndim: int) -> Tensor:
    """``buf[t]`` shaped ``(B, 1, ..., 1)`` to broadcast over a ``ndim``-dim batch."""
    return buf[t].reshape(-1, *([1] * (ndim - 1)))


class GaussianDiffusion(GradCheckpointing, nn.Module):
    r"""A denoiser and its noise schedule, with the forward process and samplers.

    Buffers (float32, shape :math:`(T,)`): ``betas``, ``alphas_cumprod`` :math:`\bar\alpha_t`,
    ``alphas_cumprod_prev`` :math:`\bar\alpha_{t-1}` (1 at the first step),
    ``sqrt_alphas_cumprod``, ``sqrt_one_minus_alphas_cumprod``, and the posterior
    :math:`q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)` with

    .. math::
        \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t, \quad
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1 - \bar\alpha_t} x_0
        + \frac{\sqrt{\alpha_t}(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t.

    Args:
        model: the noise predictor :math:`\epsilon_\theta(x_t, t, y)` (a :class:`~archzoo.models.unet.UNet`).
        image_shape: ``(C, H, W)`` of samples.
        timesteps: :math:`T` (default 1000).
        schedule: ``"linear"`` or ``"cosine"`` (default ``"linear"``).
        clip_denoised: clamp the predicted :math:`x_0` to [-1, 1] while sampling (default True).

    Attributes:
        data_range: ``(-1, 1)``; the task maps data into it.
        is_conditional, num_classes: from the denoiser.

    Shapes:
        ``forward(x_t, t, labels)``: :math:`(B, C, H, W)`, :math:`(B,)`, :math:`(B,)` -> predicted noise :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        model: nn.Module,
        image_shape: tuple[int, int, int],
        timesteps: int = 1000,
        schedule: str = "linear",
        clip_denoised: bool = True,
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise UserError(f"Unknown noise schedule '{schedule}'; choose linear or cosine.")
        self.model = model
        self.image_shape = tuple(image_shape)
        self.timesteps = int(timesteps)
        self.schedule = schedule
        self.clip_denoised = clip_denoised
        self.num_classes = int(getattr(model, "num_classes", 0))
        self.is_conditional = self.num_classes > 0
        self.data_range = (-1.0, 1.0)

        betas = linear_beta_schedule(timesteps) if schedule == "linear" else cosine_beta_schedule(timesteps)
        alphas = 1.0 - betas  # alpha_t = 1 - beta_t
        alphas_cumprod = torch.cumprod(alphas, 0)  # alpha_bar_t = prod_{s<=t} alpha_s
        alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])  # alpha_bar_{t-1}
        posterior_variance = betas * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)  # beta~_t
        bufs = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt(),
            "posterior_variance": posterior_variance,
            "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1 - alphas_cumprod),
            "posterior_mean_coef2": (1 - alphas_cumprod_prev) * alphas.sqrt() / (1 - alphas_cumprod),
        }
        for name, value in bufs.items():
            self.register_buffer(name, value.float(), persistent=False)

    # --- forward process ---------------------------------------------------------
    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        r""":math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon`."""
        return (
            _gather(self.sqrt_alphas_cumprod, t, x0.dim()) * x0
            + _gather(self.sqrt_one_minus_alphas_cumprod, t, x0.dim()) * noise
        )

    def q_mean_variance(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean :math:`\sqrt{\bar\alpha_t} x_0` and variance :math:`1 - \bar\alpha_t` of :math:`q(x_t \mid x_0)`."""
        mean = _gather(self.sqrt_alphas_cumprod, t, x0.dim()) * x0
        var = _gather(1.0 - self.alphas_cumprod, t, x0.dim()).expand_as(x0)
        return mean, var

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean :math:`\tilde\mu_t(x_t, x_0)` and variance :math:`\tilde\beta_t` of :math:`q(x_{t-1} \mid x_t, x_0)`."""
        mean = (
            _gather(self.posterior_mean_coef1, t, x_t.dim()) * x0
            + _gather(self.posterior_mean_coef2, t, x_t.dim()) * x_t
        )
        return mean, _gather(self.posterior_variance, t, x_t.dim()).expand_as(x_t)

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        r""":math:`\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon) / \sqrt{\bar\alpha_t}`."""
        return (x_t - _gather(self.sqrt_one_minus_alphas_cumprod, t, x_t.dim()) * eps) / _gather(
            self.sqrt_alphas_cumprod, t, x_t.dim()
        )

    # --- denoiser ----------------------------------------------------------------
    def forward(self, x_t: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """The predicted noise :math:`\\epsilon_\\theta(x_t, t, y)`; ``labels=None`` is unconditional."""
        return self.model(x_t, t, labels)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(x_t, t, labels)`` for :meth:`forward`: the denoiser's example with steps below :math:`T`."""
        return self.model.example_input(batch_size, self.timesteps)

    def training_forward(self, x0: Tensor) -> Tensor:
        """Noise prediction for ``x0`` noised to random steps (a generic forward for smoke tests), ``(B, C, H, W)``."""
        t = torch.randint(0, self.timesteps, (x0.shape[0],), device=x0.device)
        labels = (torch.arange(x0.shape[0], device=x0.device) % self.num_classes) if self.is_conditional else None
        return self.model(self.q_sample(x0, t, torch.randn_like(x0)), t, labels)

    def guided_eps(self, x_t: Tensor, t: Tensor, labels: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        r"""Classifier-free guidance: :math:`\tilde\epsilon = (1 + w)\,\epsilon_\theta(x_t, y) - w\,\epsilon_\theta(x_t, \varnothing)`.

        With :math:`w = 0` this is the conditional prediction; both branches run as one batch.
        """
        if labels is None or guidance == 0.0 or not self.is_conditional:
            return self.model(x_t, t, labels)
        null = torch.full_like(labels, self.num_classes)
        eps = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null]))  # (2B, C, H, W)
        eps_cond, eps_uncond = eps.chunk(2)
        return (1 + guidance) * eps_cond - guidance * eps_uncond

    # --- reverse process ---------------------------------------------------------
    def timestep_sequence(self, steps: int | None) -> Tensor:
        """``steps`` timesteps spread evenly over ``0..T-1`` (all of them when ``steps`` is None or T)."""
        steps = self.timesteps if steps is None else int(steps)
        if not 1 <= steps <= self.timesteps:
            raise UserError(f"sampling steps must be between 1 and {self.timesteps}; got {steps}.")
        return torch.linspace(0, self.timesteps - 1, steps, dtype=torch.float64).round().long().unique()

    def reverse_step(
        self,
        x_t: Tensor,
        t: int,
        t_prev: int,
        eps: Tensor,
        eta: float,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""One step from :math:`t` to :math:`t' < t` (``t_prev = -1`` ends at :math:`x_0`).

        The generalised update of DDIM (Song et al., eq. 12):

        .. math::
            x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\,\hat\epsilon + \sigma_t z,
            \quad \sigma_t = \eta \sqrt{\frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}}.

        :math:`\eta = 0` is DDIM (deterministic); :math:`\eta = 1` with :math:`t' = t - 1` gives
        :math:`\sigma_t^2 = \tilde\beta_t` and the mean :math:`\tilde\mu_t(x_t, \hat x_0)`: DDPM's ancestral step.
        """
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else a_t.new_ones(())
        tt = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
        x0 = self.predict_x0(x_t, tt, eps)
        if self.clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # the noise consistent with the clipped x0
        sigma = eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if t_prev >= 0 and eta > 0:
            x = x + sigma * randn(x.shape, generator, x.device)
        return x

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: Tensor | None = None,
        steps: int | None = None,
        guidance: float = 0.0,
        method: str = "ddpm",
        generator: torch.Generator | None = None,
        eta: float | None = None,
        x_T: Tensor | None = None,
    ) -> Tensor:
        r"""Generate ``n`` images in [-1, 1].

        Args:
            n: number of samples.
            labels: class labels ``(n,)`` for a conditional model; None cycles through the classes
                (or samples unconditionally from an unconditional model).
            steps: number of reverse steps, evenly spaced (default: all :math:`T`).
            guidance: classifier-free guidance weight :math:`w` (0: plain conditional).
            method: ``"ddpm"`` (ancestral, :math:`\eta = 1`) or ``"ddim"`` (:math:`\eta = 0`).
            generator: seeds :math:`x_T` and the per-step noise.
            eta: override :math:`\eta` (DDIM's stochasticity).
            x_T: start from this noise instead of drawing it.

        Shapes:
            output :math:`(n, C, H, W)`.
        """
        if method not in ("ddpm", "ddim"):
            raise UserError(f"Unknown sampling method '{method}'; choose ddpm or ddim.")
        eta = (1.0 if method == "ddpm" else 0.0) if eta is None else float(eta)
        dev = self.betas.device
        if self.is_conditional:
            labels = (torch.arange(n, device=dev) % self.num_classes) if labels is None else labels.to(dev)
        else:
            labels = None
        x = randn((n, *self.image_shape), generator, dev) if x_T is None else x_T.to(dev).clone()
        seq = self.timestep_sequence(steps).tolist()
        for i in range(len(seq) - 1, -1, -1):
            t, t_prev = seq[i], (seq[i - 1] if i > 0 else -1)
            tt = torch.full((n,), t, device=dev, dtype=torch.long)
            eps = self.guided_eps(x, tt, labels, guidance)
            x = self.reverse_step(x, t, t_prev, eps, eta, generator)
        return x.clamp(-1.0, 1.0)


UNET_ARGS = ("in_channels", "image_size", "num_classes", "base_channels", "channel_mults", "num_res_blocks", "dropout")


@register_model("ddpm_unet")
@variant(UNet, UNET_ARGS, extra=[(GaussianDiffusion, ("timesteps", "schedule"))], num_classes=10)
def ddpm_unet(
    class_cond: bool = False,
    attention: bool = True,
    *,
    num_classes: int,
    timesteps: int,
    schedule: str,
    **unet: Any,
) -> GaussianDiffusion:
    """DDPM with a U-Net (28 -> 14 -> 7, attention at 7x7); ``class_cond=True`` adds labels and a null class for CFG."""
    model = UNet(**unet, num_classes=num_classes if class_cond else 0, attn_resolutions=None if attention else ())
    image_shape = (unet["in_channels"], *image_hw(unet["image_size"]))
    return GaussianDiffusion(model, image_shape, timesteps=timesteps, schedule=schedule)
