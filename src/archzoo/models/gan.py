r"""Generative adversarial networks: MLP GAN, DCGAN, conditional GAN and the WGAN-GP critic.

A generator :math:`G(z)`, :math:`z \sim \mathcal N(0, I)`, and a discriminator
:math:`D(x)` play the game (Goodfellow et al., 2014, https://arxiv.org/abs/1406.2661)

.. math::
    \min_G \max_D\ \mathbb E_{x}[\log D(x)] + \mathbb E_{z}[\log(1 - D(G(z)))].

* DCGAN (Radford, Metz & Chintala, 2016, https://arxiv.org/abs/1511.06434):
  transposed-conv generator with batch norm and ReLU, strided-conv discriminator
  with LeakyReLU(0.2), no pooling, weights from :math:`\mathcal N(0, 0.02)`.
* Conditional GAN (Mirza & Osindero, 2014, https://arxiv.org/abs/1411.1784): a
  label embedding joins :math:`z` in the generator; the MLP discriminator takes
  the embedding with its input and the conv discriminator uses the projection
  form :math:`D(x, y) = w^\top \phi(x) + b + e_y^\top \phi(x)` (Miyato & Koyama,
  2018, https://arxiv.org/abs/1802.05637).
* WGAN-GP (Gulrajani et al., 2017, https://arxiv.org/abs/1704.00028): the
  discriminator is a critic with an unbounded output and no batch norm (the
  gradient penalty is per sample), layer norm instead.

A generator-discriminator pair is one module with ``.generator`` and
``.discriminator``; ``forward(z)`` generates, so the engine's checkpointing and
the registry treat a GAN like any other model. The losses and the two optimizer
steps live in :mod:`archzoo.tasks.adversarial`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import init_weights
from archzoo.layers.conv import up_block
from archzoo.layers.norm import norm_2d
from archzoo.models._variant import variant
from archzoo.registry import register_model
from archzoo.utils import image_hw, randn


def num_upsamplings(image_size: int) -> int:
    """Stride-2 stages so that the smallest grid is between 4 and 7 pixels: 28 -> 2 (7x7), 32 -> 3 (4x4)."""
    k = 0
    while image_size % 2 ** (k + 1) == 0 and image_size // 2 ** (k + 1) >= 4:
        k += 1
    if k == 0:
        raise UserError(f"GAN image size must be even and at least 8; got {image_size}.")
    return k


# ---------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------


class MLPGenerator(nn.Module):
    r"""Fully connected generator :math:`G(z, y) = \tanh(\mathrm{MLP}([z; e_y]))` reshaped to an image.

    Args:
        latent_dim: size of :math:`z` (default 100).
        out_shape: ``(C, H, W)`` of the images.
        hidden_dims: widths (default ``(256, 512, 1024)``).
        num_classes: classes for a conditional generator, 0 for none (default 0).
        embed_dim: label embedding size (default 10).

    Shapes:
        :math:`z` :math:`(B, d)`, labels :math:`(B,)`, output :math:`(B, C, H, W)` in [-1, 1].
    """

    def __init__(
        self,
        latent_dim: int = 100,
        out_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dims: Sequence[int] = (256, 512, 1024),
        num_classes: int = 0,
        embed_dim: int = 10,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        d_in = latent_dim + (embed_dim if num_classes > 0 else 0)
        layers: list[nn.Module] = []
        for h in hidden_dims:
            layers += [nn.Linear(d_in, h), nn.BatchNorm1d(h), nn.LeakyReLU(0.2, inplace=True)]
            d_in = h
        layers += [nn.Linear(d_in, math.prod(out_shape)), nn.Tanh(), nn.Unflatten(1, out_shape)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)  # (B, d + e)
        return self.net(z)


class DCGANGenerator(nn.Module):
    r"""DCGAN generator: project :math:`z` to a small grid, then double the resolution ``k`` times.

    For 28x28 images: :math:`z \to 128 \times 7 \times 7 \to 64 \times 14 \times 14 \to C \times 28 \times 28`;
    for 32x32: :math:`z \to 256 \times 4 \times 4 \to \dots \to C \times 32 \times 32`.

    Args:
        latent_dim: size of :math:`z` (default 100).
        out_channels: image channels (default 1).
        image_size: image side, 28 or 32 (any even size >= 8 works) (default 28).
        base_channels: width of the last hidden stage; earlier stages double it (default 64).
        num_classes: classes for a conditional generator, 0 for none (default 0).
        embed_dim: label embedding size (default 50).
        upsample: ``"transposed"`` (4x4 stride-2 transposed convs) or ``"nearest"``
            (nearest upsampling and a 3x3 conv, which avoids checkerboard artefacts) (default ``"transposed"``).

    Shapes:
        :math:`z` :math:`(B, d)`, labels :math:`(B,)`, output :math:`(B, C, H, W)` in [-1, 1].
    """

    def __init__(
        self,
        latent_dim: int = 100,
        out_channels: int = 1,
        image_size: int = 28,
        base_channels: int = 64,
        num_classes: int = 0,
        embed_dim: int = 50,
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        k = num_upsamplings(image_size)
        self.s0 = image_size // 2**k
        self.c0 = base_channels * 2 ** (k - 1)
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        d_in = latent_dim + (embed_dim if num_classes > 0 else 0)
        self.project = nn.Sequential(
            nn.Linear(d_in, self.c0 * self.s0 * self.s0, bias=False),
            nn.BatchNorm1d(self.c0 * self.s0 * self.s0),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (self.c0, self.s0, self.s0)),  # (B, c0, s0, s0)
        )
        ups: list[nn.Module] = []
        c = self.c0
        for i in range(k):
            last = i == k - 1
            nxt = out_channels if last else c // 2
            ups.append(up_block(c, nxt, act=None if last else "relu", norm=not last, mode=upsample))
            c = nxt
        self.up = nn.Sequential(*ups)  # (B, C, H, W)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)  # (B, d + e)
        return torch.tanh(self.up(self.project(z)))


# ---------------------------------------------------------------------------
# discriminators
# ---------------------------------------------------------------------------


class MLPDiscriminator(nn.Module):
    r"""Fully connected discriminator :math:`D(x, y) = w^\top \phi([\mathrm{vec}(x); e_y]) + b` (a logit).

    Args:
        in_shape: ``(C, H, W)`` of the images.
        hidden_dims: widths (default ``(512, 256)``).
        num_classes: classes for a conditional discriminator, 0 for none (default 0).
        embed_dim: label embedding size (default 10).
        dropout: dropout after each hidden layer (default 0.3).

    Shapes:
        input :math:`(B, C, H, W)`, labels :math:`(B,)`, output :math:`(B,)` logits.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dims: Sequence[int] = (512, 256),
        num_classes: int = 0,
        embed_dim: int = 10,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None
        d_in = math.prod(in_shape) + (embed_dim if num_classes > 0 else 0)
        layers: list[nn.Module] = []
        for h in hidden_dims:
            layers += [nn.Linear(d_in, h), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
            d_in = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d_in, 1)

    def features(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Penultimate features :math:`\\phi`, ``(B, F)`` (used by feature matching)."""
        h = x.flatten(1)  # (B, C*H*W)
        if self.embed is not None:
            h = torch.cat([h, self.embed(labels)], 1)
        return self.body(h)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, labels)).squeeze(1)


class DCGANDiscriminator(nn.Module):
    r"""Strided-conv discriminator (or WGAN critic): 4x4 stride-2 convs, LeakyReLU(0.2), a linear head.

    Conditional scores use the projection form :math:`D(x, y) = w^\top\phi(x) + b + e_y^\top\phi(x)`.

    Args:
        in_channels: image channels (default 1).
        image_size: image side (default 28).
        base_channels: width of the first stage; each later stage doubles it (default 64).
        num_classes: classes for a conditional discriminator, 0 for none (default 0).
        norm: ``"batch"`` (DCGAN), ``"layer"`` (WGAN-GP critic), ``"instance"`` or ``"none"`` (default ``"batch"``).
        dropout: dropout on the features before the head (default 0).

    Shapes:
        input :math:`(B, C, H, W)`, labels :math:`(B,)`, output :math:`(B,)` logits (or critic values).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        base_channels: int = 64,
        num_classes: int = 0,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        k = num_upsamplings(image_size)
        s0 = image_size // 2**k
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(k):
            out = base_channels * 2**i
            layers.append(nn.Conv2d(c, out, 4, 2, 1, bias=(i == 0 or norm == "none")))
            if i > 0:  # no norm on the first layer (DCGAN)
                layers.append(norm_2d(norm, out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c = out
        layers += [nn.Flatten(), nn.Dropout(dropout)]  # (B, c*s0*s0)
        self.body = nn.Sequential(*layers)
        feat = c * s0 * s0
        self.head = nn.Linear(feat, 1)
        self.embed = nn.Embedding(num_classes, feat) if num_classes > 0 else None
        if self.embed is not None:
            # On the scale of the head's weights: nn.Embedding's N(0, 1) would make e_y^T phi(x) a sum of
            # F unit-variance terms, initial logits of ~sqrt(F) (about 60 at 28x28), and a saturated start.
            nn.init.uniform_(self.embed.weight, -(feat**-0.5), feat**-0.5)

    def features(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Flattened conv features :math:`\\phi(x)`, ``(B, F)``."""
        return self.body(x)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.features(x)  # (B, F)
        out = self.head(h).squeeze(1)  # (B,)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)  # projection term e_y^T phi(x)
        return out


# ---------------------------------------------------------------------------
# the pair
# ---------------------------------------------------------------------------


class GAN(nn.Module):
    """A generator and a discriminator in one module; ``forward(z, labels)`` generates.

    Subclasses build ``self.generator`` and ``self.discriminator``.

    Attributes:
        latent_dim: size of :math:`z`.
        num_classes: label classes (0: unconditional).
        is_conditional: whether ``labels`` are used.
        data_range: ``(-1, 1)``, the tanh output range of the generator.
    """

    def __init__(self, latent_dim: int, num_classes: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.is_conditional = num_classes > 0
        self.data_range = (-1.0, 1.0)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.generator(z, labels)

    def discriminate(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.discriminator(x, labels)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return randn((n, self.latent_dim), generator, next(self.parameters()).device)

    def default_labels(self, n: int) -> Tensor | None:
        """Labels ``0, 1, ..., K-1, 0, 1, ...`` for ``n`` samples (None when unconditional)."""
        if not self.is_conditional:
            return None
        return torch.arange(n, device=next(self.parameters()).device) % self.num_classes

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, Tensor | None]:
        """``(z, labels)``: latents :math:`(B, d)` and cycling class labels :math:`(B,)` (None when unconditional)."""
        return self.sample_latent(batch_size), self.default_labels(batch_size)

    def training_forward(self, x: Tensor) -> Tensor:
        """Scores of real ``x`` and of as many generated images, ``(B, 2)``: one pass through both networks.

        A generic forward for smoke tests (the GAN tasks call the two networks themselves).
        """
        labels = self.default_labels(x.shape[0])
        fake = self.generator(self.sample_latent(x.shape[0]), labels)
        return torch.stack([self.discriminator(x, labels), self.discriminator(fake, labels)], dim=1)

    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images in [-1, 1]; a conditional GAN cycles through the classes unless ``labels`` are given."""
        z = self.sample_latent(n, generator)
        if self.is_conditional:
            labels = self.default_labels(n) if labels is None else labels.to(z.device)
        else:
            labels = None
        return self.generator(z, labels)


class MLPGAN(GAN):
    """Fully connected GAN (Goodfellow et al. 2014), optionally conditional (Mirza & Osindero 2014).

    Args:
        in_channels: image channels (default 1).
        image_size: image side or ``(H, W)`` (default 28).
        latent_dim: size of :math:`z` (default 100).
        g_hidden: generator widths (default ``(256, 512, 1024)``).
        d_hidden: discriminator widths (default ``(512, 256)``).
        num_classes: 0 for an unconditional GAN (default 0).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        latent_dim: int = 100,
        g_hidden: Sequence[int] = (256, 512, 1024),
        d_hidden: Sequence[int] = (512, 256),
        num_classes: int = 0,
    ) -> None:
        super().__init__(latent_dim, num_classes)
        shape = (in_channels, *image_hw(image_size))
        self.generator = MLPGenerator(latent_dim, shape, g_hidden, num_classes)
        self.discriminator = MLPDiscriminator(shape, d_hidden, num_classes)


class DCGAN(GAN):
    """DCGAN pair (Radford et al. 2016) with :math:`\\mathcal N(0, 0.02)` initialisation.

    Args:
        in_channels: image channels (default 1).
        image_size: image side, 28 or 32 (default 28).
        latent_dim: size of :math:`z` (default 100).
        base_channels: generator width of the last stage and discriminator width of the first (default 64).
        num_classes: 0 for an unconditional GAN (default 0).
        upsample: ``"transposed"`` or ``"nearest"`` generator upsampling (default ``"transposed"``).
        d_norm: discriminator normalisation: ``"batch"`` or, for a WGAN-GP critic, ``"layer"``/``"none"`` (default ``"batch"``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        latent_dim: int = 100,
        base_channels: int = 64,
        num_classes: int = 0,
        upsample: str = "transposed",
        d_norm: str = "batch",
    ) -> None:
        super().__init__(latent_dim, num_classes)
        h, w = image_hw(image_size)
        if h != w:
            raise UserError(f"DCGAN needs square images; got {h}x{w}.")
        self.generator = DCGANGenerator(latent_dim, in_channels, h, base_channels, num_classes, upsample=upsample)
        self.discriminator = DCGANDiscriminator(in_channels, h, base_channels, num_classes, norm=d_norm)
        init_weights(self, "normal")


@register_model("gan_mlp")
@variant(MLPGAN, ("in_channels", "image_size", "latent_dim"))
def gan_mlp(**kwargs: Any) -> MLPGAN:
    """The original fully connected GAN: 100 -> 256 -> 512 -> 1024 -> 784 and 784 -> 512 -> 256 -> 1."""
    return MLPGAN(**kwargs)


@register_model("dcgan")
@variant(DCGAN, ("in_channels", "image_size", "latent_dim", "base_channels", "upsample"))
def dcgan(**kwargs: Any) -> DCGAN:
    """DCGAN for 28x28 or 32x32 images; ``upsample="nearest"`` uses upsample+conv in the generator."""
    return DCGAN(**kwargs)


@register_model("cgan")
@variant(DCGAN, ("in_channels", "image_size", "num_classes", "latent_dim", "base_channels"), num_classes=10)
def cgan(
    arch: str = "dcgan", *, in_channels: int, image_size: int, num_classes: int, latent_dim: int, base_channels: int
) -> GAN:
    """Class-conditional GAN: ``arch="dcgan"`` (projection discriminator) or ``"mlp"`` (concatenated embeddings)."""
    if arch == "mlp":
        return MLPGAN(in_channels, image_size, latent_dim, num_classes=num_classes)
    if arch == "dcgan":
        return DCGAN(in_channels, image_size, latent_dim, base_channels, num_classes=num_classes)
    raise UserError(f"Unknown cgan arch '{arch}'; choose dcgan or mlp.")


@register_model("wgan_gp")
@variant(DCGAN, ("in_channels", "image_size", "latent_dim", "base_channels"), latent_dim=128)
def wgan_gp(norm: str = "layer", **kwargs: Any) -> DCGAN:
    """DCGAN generator with a WGAN-GP critic: no batch norm (layer norm by default), unbounded output."""
    return DCGAN(d_norm=norm, **kwargs)
