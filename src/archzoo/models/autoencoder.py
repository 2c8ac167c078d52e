r"""Autoencoders: an MLP and a convolutional encoder-decoder, with a denoising option.

An autoencoder learns an encoder :math:`z = f_\phi(x)` and a decoder
:math:`\hat x = g_\theta(z)` that minimise a reconstruction loss
:math:`\ell(x, g_\theta(f_\phi(x)))` through a bottleneck ``latent_dim``
(Hinton & Salakhutdinov, 2006, https://doi.org/10.1126/science.1127647).
The denoising autoencoder (Vincent et al., 2008,
https://www.cs.toronto.edu/~larocheh/publications/icml-2008-denoising-autoencoders.pdf)
corrupts the input during training, :math:`\tilde x = x + \sigma\epsilon`, and
still reconstructs the clean :math:`x`.

The encoder and decoder stacks are shared layers (:func:`~archzoo.layers.mlp.mlp`,
:func:`~archzoo.layers.conv.conv_encoder`, :func:`~archzoo.layers.conv.conv_decoder`);
:data:`OUTPUT_RANGES` maps an output activation to the range of the images, which the
VQ-VAE uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import get_activation
from archzoo.layers.conv import conv_decoder, conv_encoder
from archzoo.layers.mlp import mlp
from archzoo.models._example import ImageInput
from archzoo.models._variant import variant
from archzoo.registry import register_model
from archzoo.utils import downsampled_hw, image_hw

#: Output activation name -> the value range of the model's images (None: unbounded).
OUTPUT_RANGES: dict[str, tuple[float, float] | None] = {
    "sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "identity": None,
}


def check_output(output: str) -> tuple[float, float] | None:
    if output not in OUTPUT_RANGES:
        raise UserError(f"Unknown output '{output}'; choose one of {', '.join(OUTPUT_RANGES)}.")
    return OUTPUT_RANGES[output]


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------


class Autoencoder(ImageInput, nn.Module):
    r"""Base autoencoder: ``encode``, ``decode``, ``forward`` and the denoising corruption.

    In training mode ``forward`` reconstructs the corrupted input
    :math:`\tilde x = x + \sigma \epsilon,\ \epsilon \sim \mathcal N(0, I)` with
    :math:`\sigma` = ``noise_std``; the task compares the output with the clean
    :math:`x`. In eval mode no noise is added.

    Subclasses define ``self.encoder`` (image -> latent ``(B, latent_dim)``) and
    ``self.decoder`` (latent -> pre-activation image).
    """

    is_conditional = False
    num_classes = 0

    def __init__(self, x_shape: tuple[int, int, int], latent_dim: int, output: str, noise_std: float) -> None:
        super().__init__()
        self.x_shape = x_shape
        self.latent_dim = latent_dim
        self.data_range = check_output(output)
        self.out_act = get_activation(output)
        self.noise_std = float(noise_std)

    def corrupt(self, x: Tensor) -> Tensor:
        """Denoising corruption :math:`\\tilde x = x + \\sigma\\epsilon` (identity when ``noise_std`` is 0)."""
        if self.noise_std <= 0:
            return x
        return x + self.noise_std * torch.randn_like(x)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.out_act(self.decoder(z))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.encode(x)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Clean reconstruction :math:`g(f(x))`, no corruption."""
        return self.decode(self.encode(x))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            x = self.corrupt(x)
        return self.decode(self.encode(x))


class MLPAutoencoder(Autoencoder):
    r"""Fully connected autoencoder on flattened images.

    :math:`z = f_\phi(\mathrm{vec}(x))`, :math:`\hat x = \mathrm{act}(g_\theta(z))`.

    Args:
        in_channels: image channels (default 1).
        image_size: image side, or ``(H, W)`` (default 28).
        hidden_dims: encoder widths; the decoder mirrors them (default ``(512, 256)``).
        latent_dim: bottleneck size (default 32).
        act: hidden activation (default ``"relu"``).
        output: output activation, sigmoid for data in [0, 1], tanh for [-1, 1],
            identity for unbounded data (default ``"sigmoid"``).
        noise_std: std of the Gaussian input corruption in training; 0 is a plain
            autoencoder (default 0).

    Shapes:
        input :math:`(B, C, H, W)`, latent :math:`(B, d)`, output :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        hidden_dims: Sequence[int] = (512, 256),
        latent_dim: int = 32,
        act: str = "relu",
        output: str = "sigmoid",
        noise_std: float = 0.0,
    ) -> None:
        h, w = image_hw(image_size)
        super().__init__((in_channels, h, w), latent_dim, output, noise_std)
        d = in_channels * h * w
        self.encoder = nn.Sequential(nn.Flatten(), mlp([d, *hidden_dims, latent_dim], act))
        self.decoder = nn.Sequential(
            mlp([latent_dim, *reversed(hidden_dims), d], act),
            nn.Unflatten(1, self.x_shape),  # (B, C*H*W) -> (B, C, H, W)
        )


class ConvAutoencoder(Autoencoder):
    r"""Convolutional autoencoder: strided convs down, a linear bottleneck, transposed convs up.

    Each of the ``len(channels)`` stages halves the resolution (28 -> 14 -> 7 for
    the default), so the image side must divide by :math:`2^{\text{len(channels)}}`.

    Args:
        in_channels: image channels (default 1).
        image_size: image side, or ``(H, W)`` (default 28).
        channels: encoder widths per stage; the decoder mirrors them (default ``(32, 64)``).
        latent_dim: bottleneck size (default 32).
        act: hidden activation (default ``"relu"``).
        output: output activation (default ``"sigmoid"``).
        noise_std: std of the Gaussian input corruption in training (default 0).

    Shapes:
        input :math:`(B, C, H, W)`, latent :math:`(B, d)`, output :math:`(B, C, H, W)`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        channels: Sequence[int] = (32, 64),
        latent_dim: int = 32,
        act: str = "relu",
        output: str = "sigmoid",
        noise_std: float = 0.0,
    ) -> None:
        h, w = image_hw(image_size)
        super().__init__((in_channels, h, w), latent_dim, output, noise_std)
        h0, w0 = downsampled_hw((h, w), len(channels), "ConvAutoencoder")
        feat = channels[-1] * h0 * w0
        self.encoder = nn.Sequential(
            conv_encoder(in_channels, channels, act),  # (B, C_k, H/2^k, W/2^k)
            nn.Flatten(),  # (B, C_k*h0*w0)
            nn.Linear(feat, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, feat),
            get_activation(act),
            nn.Unflatten(1, (channels[-1], h0, w0)),  # (B, C_k, h0, w0)
            conv_decoder(in_channels, channels, act),  # (B, C, H, W)
        )


@register_model("ae_mlp")
@variant(MLPAutoencoder, ("in_channels", "image_size", "latent_dim", "hidden_dims", "output", "noise_std"))
def ae_mlp(**kwargs: Any) -> MLPAutoencoder:
    """MLP autoencoder 784-512-256-32 (set ``noise_std`` > 0 for a denoising autoencoder)."""
    return MLPAutoencoder(**kwargs)


@register_model("ae_conv")
@variant(ConvAutoencoder, ("in_channels", "image_size", "latent_dim", "channels", "output", "noise_std"))
def ae_conv(**kwargs: Any) -> ConvAutoencoder:
    """Convolutional autoencoder with two stride-2 stages (set ``noise_std`` > 0 to denoise)."""
    return ConvAutoencoder(**kwargs)


__all__ = ["OUTPUT_RANGES", "Autoencoder", "ConvAutoencoder", "MLPAutoencoder", "check_output"]
