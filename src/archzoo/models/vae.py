r"""Variational autoencoders: the classic MLP VAE and a convolutional VAE.

Kingma & Welling, *Auto-Encoding Variational Bayes* (2014),
https://arxiv.org/abs/1312.6114. An encoder gives a diagonal Gaussian posterior
:math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))`,
the prior is :math:`p(z) = \mathcal N(0, I)` and a decoder gives the likelihood
:math:`p_\theta(x \mid z)`. Training maximises the evidence lower bound

.. math::
    \log p_\theta(x) \ge \mathcal L(x) =
    \mathbb E_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]
    - \mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z)).

This module holds the model pieces (encoder, reparameterisation, decoder,
likelihood and closed-form KL); the objective with its :math:`\beta` weight and
the importance-weighted bound live in :mod:`archzoo.tasks.reconstruction`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import get_activation
from archzoo.layers.conv import conv_decoder, conv_encoder
from archzoo.layers.mlp import mlp
from archzoo.models._example import ImageInput
from archzoo.models._variant import variant
from archzoo.registry import register_model
from archzoo.utils import downsampled_hw, image_hw, randn

LIKELIHOODS = ("bernoulli", "gaussian")


class VAEOutput(NamedTuple):
    """What :meth:`VAE.forward` returns."""

    out: Tensor  # decoder output: Bernoulli logits or Gaussian mean, (B, C, H, W)
    mu: Tensor  # posterior mean, (B, d)
    logvar: Tensor  # posterior log-variance, (B, d)
    z: Tensor  # one reparameterised sample, (B, d)


class VAE(ImageInput, nn.Module):
    r"""Shared VAE machinery; subclasses build ``encoder``, ``to_mu``, ``to_logvar`` and ``decoder``.

    Likelihoods:

    * ``"bernoulli"``: the decoder outputs logits :math:`\ell`,
      :math:`\log p(x \mid z) = \sum_i x_i \log \sigma(\ell_i) + (1 - x_i)\log(1 - \sigma(\ell_i))`
      (the negative binary cross-entropy, as in the original paper; data in [0, 1]).
    * ``"gaussian"``: the decoder outputs a mean :math:`m \in [0, 1]` (sigmoid) with a fixed
      std :math:`s` = ``obs_std``,
      :math:`\log p(x \mid z) = -\tfrac{1}{2s^2}\lVert x - m\rVert^2 - \tfrac D2 \log(2\pi s^2)`
      (a scaled MSE).

    Attributes:
        data_range: ``(0, 1)``: the range of inputs, reconstructions and samples.
    """

    is_conditional = False
    num_classes = 0

    def __init__(self, x_shape: tuple[int, int, int], latent_dim: int, likelihood: str, obs_std: float) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise UserError(f"Unknown likelihood '{likelihood}'; choose bernoulli or gaussian.")
        if obs_std <= 0:
            raise UserError(f"obs_std must be positive; got {obs_std}.")
        self.x_shape = x_shape
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.obs_std = float(obs_std)
        self.data_range = (0.0, 1.0)

    # --- encoder -----------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters :math:`(\\mu, \\log\\sigma^2)`, each ``(B, d)``."""
        h = self.encoder(x)  # (B, F)
        return self.to_mu(h), self.to_logvar(h)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.encode(x)[0]

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Reparameterisation trick: :math:`z = \mu + \sigma \odot \epsilon`, :math:`\sigma = e^{\frac12 \log\sigma^2}`,
        :math:`\epsilon \sim \mathcal N(0, I)`, so the sample is differentiable in :math:`\mu, \sigma`."""
        eps = randn(mu.shape, generator, mu.device).to(mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    # --- decoder -----------------------------------------------------------------
    def decode_raw(self, z: Tensor) -> Tensor:
        """Decoder output before the mean link: logits (Bernoulli) or pre-sigmoid mean (Gaussian)."""
        return self.decoder(z)  # (B, C, H, W)

    def mean(self, out: Tensor) -> Tensor:
        """The mean of :math:`p(x \\mid z)` from the raw decoder output (both likelihoods use a sigmoid link)."""
        return torch.sigmoid(out)

    def decode(self, z: Tensor) -> Tensor:
        """The image :math:`\\mathbb E[x \\mid z]` in ``data_range``."""
        return self.mean(self.decode_raw(z))

    def log_likelihood(self, x: Tensor, out: Tensor) -> Tensor:
        """:math:`\\log p_\\theta(x \\mid z)` summed over pixels, ``(B,)``, from the raw decoder output."""
        if self.likelihood == "bernoulli":
            ll = -F.binary_cross_entropy_with_logits(out, x, reduction="none")
        else:
            s2 = self.obs_std**2
            # -(x - m)^2 / (2 s^2) - 1/2 log(2 pi s^2) per pixel
            ll = -0.5 * (x - torch.sigmoid(out)).pow(2) / s2 - 0.5 * math.log(2 * math.pi * s2)
        return ll.flatten(1).sum(1)

    # --- densities ---------------------------------------------------------------
    @staticmethod
    def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
        r"""Closed form :math:`\mathrm{KL}(\mathcal N(\mu, \sigma^2) \| \mathcal N(0, 1)) =
        -\tfrac12 \sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2)`, ``(B,)``."""
        return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)

    @staticmethod
    def log_prior(z: Tensor) -> Tensor:
        """:math:`\\log \\mathcal N(z; 0, I) = -\\tfrac12 \\lVert z\\rVert^2 - \\tfrac d2 \\log 2\\pi`, summed over the last dim."""
        return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)

    @staticmethod
    def log_posterior(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """:math:`\\log q(z \\mid x) = -\\tfrac12 \\sum_j [\\log 2\\pi + \\log\\sigma_j^2 + (z_j - \\mu_j)^2/\\sigma_j^2]`."""
        return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)

    # --- model API ---------------------------------------------------------------
    def forward(self, x: Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return VAEOutput(self.decode_raw(z), mu, logvar, z)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Decode the posterior mean: :math:`\\mathbb E[x \\mid z = \\mu_\\phi(x)]`."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw :math:`z \\sim \\mathcal N(0, I)` and return the decoded means, ``(n, C, H, W)`` in [0, 1]."""
        dev = next(self.parameters()).device
        z = randn((n, self.latent_dim), generator, dev)
        return self.decode(z)


class MLPVAE(VAE):
    r"""The classic fully connected VAE (784-400-20 in the paper and PyTorch's example).

    Args:
        in_channels: image channels (default 1).
        image_size: image side or ``(H, W)`` (default 28).
        hidden_dims: encoder widths; the decoder mirrors them (default ``(400,)``).
        latent_dim: :math:`d` (default 20).
        likelihood: ``"bernoulli"`` (BCE) or ``"gaussian"`` (MSE) (default ``"bernoulli"``).
        obs_std: std of the Gaussian likelihood (default 0.1).
        act: hidden activation (default ``"relu"``).

    Shapes:
        input :math:`(B, C, H, W)`, :math:`\mu, \log\sigma^2, z` :math:`(B, d)`, output :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        hidden_dims: Sequence[int] = (400,),
        latent_dim: int = 20,
        likelihood: str = "bernoulli",
        obs_std: float = 0.1,
        act: str = "relu",
    ) -> None:
        h, w = image_hw(image_size)
        super().__init__((in_channels, h, w), latent_dim, likelihood, obs_std)
        d = in_channels * h * w
        self.encoder = nn.Sequential(nn.Flatten(), mlp([d, *hidden_dims], act, last_act=True))  # (B, hidden[-1])
        self.to_mu = nn.Linear(hidden_dims[-1], latent_dim)
        self.to_logvar = nn.Linear(hidden_dims[-1], latent_dim)
        self.decoder = nn.Sequential(
            mlp([latent_dim, *reversed(hidden_dims), d], act),
            nn.Unflatten(1, self.x_shape),  # (B, C*H*W) -> (B, C, H, W)
        )


class ConvVAE(VAE):
    r"""Convolutional VAE: stride-2 convs to a Gaussian posterior, transposed convs back.

    Args:
        in_channels: image channels (default 1).
        image_size: image side or ``(H, W)``, divisible by :math:`2^{\text{len(channels)}}` (default 28).
        channels: encoder widths per stage (default ``(32, 64)``).
        latent_dim: :math:`d` (default 16).
        likelihood: ``"bernoulli"`` or ``"gaussian"`` (default ``"bernoulli"``).
        obs_std: std of the Gaussian likelihood (default 0.1).
        hidden: width of the fully connected layer before the posterior heads (default 256).
        act: hidden activation (default ``"relu"``).

    Shapes:
        input :math:`(B, C, H, W)`, :math:`\mu, \log\sigma^2, z` :math:`(B, d)`, output :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        channels: Sequence[int] = (32, 64),
        latent_dim: int = 16,
        likelihood: str = "bernoulli",
        obs_std: float = 0.1,
        hidden: int = 256,
        act: str = "relu",
    ) -> None:
        h, w = image_hw(image_size)
        super().__init__((in_channels, h, w), latent_dim, likelihood, obs_std)
        h0, w0 = downsampled_hw((h, w), len(channels), "ConvVAE")
        feat = channels[-1] * h0 * w0
        self.encoder = nn.Sequential(
            conv_encoder(in_channels, channels, act),  # (B, C_k, h0, w0)
            nn.Flatten(),  # (B, C_k*h0*w0)
            nn.Linear(feat, hidden),
            get_activation(act),
        )
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            get_activation(act),
            nn.Linear(hidden, feat),
            get_activation(act),
            nn.Unflatten(1, (channels[-1], h0, w0)),  # (B, C_k, h0, w0)
            conv_decoder(in_channels, channels, act),  # (B, C, H, W)
        )


@register_model("vae_mlp")
@variant(MLPVAE, ("in_channels", "image_size", "latent_dim", "hidden_dims", "likelihood", "obs_std"))
def vae_mlp(**kwargs: Any) -> MLPVAE:
    """The tutorial VAE: 784-400-(20, 20) encoder, 20-400-784 decoder, Bernoulli likelihood."""
    return MLPVAE(**kwargs)


@register_model("vae_conv")
@variant(ConvVAE, ("in_channels", "image_size", "latent_dim", "channels", "likelihood", "obs_std"))
def vae_conv(**kwargs: Any) -> ConvVAE:
    """Convolutional VAE with two stride-2 stages and a 16-dimensional latent."""
    return ConvVAE(**kwargs)
