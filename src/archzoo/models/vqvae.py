r"""VQ-VAE: a convolutional autoencoder with a discrete, vector-quantised latent.

van den Oord, Vinyals & Kavukcuoglu, *Neural Discrete Representation Learning*
(2017), https://arxiv.org/abs/1711.00937. The encoder output :math:`z_e(x)` at
every latent position is replaced by its nearest codebook vector

.. math::
    z_q(x) = e_k, \quad k = \arg\min_j \lVert z_e(x) - e_j \rVert_2,

and the decoder reconstructs from :math:`z_q`. The argmin has no gradient, so
the straight-through estimator copies the decoder's gradient to the encoder:
:math:`\tilde z_q = z_e + \mathrm{sg}[z_q - z_e]`. The objective is

.. math::
    \mathcal L = \lVert x - \hat x \rVert^2
    + \lVert \mathrm{sg}[z_e] - e \rVert^2 + \beta \lVert z_e - \mathrm{sg}[e] \rVert^2,

a reconstruction, a codebook and a commitment term (:math:`\beta` = 0.25 in the
paper; it lives in the task). With ``ema=True`` the codebook is instead the
exponential moving average of the encoder outputs assigned to each code
(paper's appendix A.1), and the codebook term is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers import get_activation
from archzoo.models._example import ImageInput
from archzoo.models._variant import variant
from archzoo.models.autoencoder import check_output
from archzoo.registry import register_model
from archzoo.utils import downsampled_hw, image_hw


class Quantized(NamedTuple):
    """What :class:`VectorQuantizer` returns."""

    z_q: Tensor  # straight-through quantised latents, (B, D, H, W)
    codebook_loss: Tensor  # ||sg[z_e] - e||^2 (0 with EMA updates), scalar
    commitment_loss: Tensor  # ||z_e - sg[e]||^2, scalar
    indices: Tensor  # chosen codes, (B, H, W)
    perplexity: Tensor  # exp(entropy of code usage in the batch), scalar


class VectorQuantizer(nn.Module):
    r"""Nearest-neighbour quantisation with a straight-through gradient.

    With ``ema=True`` the codebook follows (in training mode) the moving averages

    .. math::
        N_j \leftarrow \gamma N_j + (1-\gamma) n_j, \quad
        m_j \leftarrow \gamma m_j + (1-\gamma) \textstyle\sum_{i: k_i = j} z_{e,i}, \quad
        e_j = m_j / \tilde N_j,

    where :math:`n_j` counts the batch vectors assigned to code :math:`j` and
    :math:`\tilde N_j` is :math:`N_j` with Laplace smoothing. Under
    ``torch.distributed`` the counts and sums are summed over ranks first.

    Codes that no encoder output comes near stop being updated and stay unused
    (codebook collapse: a low usage perplexity). With ``restart_threshold`` > 0,
    every code whose moving-average count :math:`N_j` falls below it is moved to
    a randomly chosen encoder output of the current batch (the random restarts of
    Dhariwal et al. 2020, *Jukebox*, https://arxiv.org/abs/2005.00341).

    Args:
        num_codes: codebook size :math:`K` (default 512).
        code_dim: code vector size :math:`D` (default 64).
        ema: update the codebook by moving averages instead of gradients (default False).
        decay: :math:`\gamma` of the moving averages (default 0.99).
        eps: Laplace smoothing of the counts (default 1e-5).
        restart_threshold: restart codes whose :math:`N_j` is below this, in vectors per batch (EMA only;
            default 0, off).

    Shapes:
        input :math:`(B, D, H, W)`; ``z_q`` :math:`(B, D, H, W)`, ``indices`` :math:`(B, H, W)`.
    """

    def __init__(
        self,
        num_codes: int = 512,
        code_dim: int = 64,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        if restart_threshold < 0 or (restart_threshold > 0 and not ema):
            raise UserError("restart_threshold must be 0, or positive together with ema=true.")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.ema, self.decay, self.eps = ema, decay, eps
        self.restart_threshold = float(restart_threshold)
        init = torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)

    def codes(self, indices: Tensor) -> Tensor:
        """Look up codes: ``(B, H, W)`` indices -> ``(B, D, H, W)`` vectors."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code of each row of ``flat`` ``(N, D)``."""
        # Not under autocast, whose bf16/fp16 matmul would round z.e enough to pick wrong codes.
        with torch.autocast(flat.device.type, enabled=False):
            # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2
            d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)  # (N, K)
        return d.argmin(1)

    def forward(self, z_e: Tensor) -> Quantized:
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*H*W, D)
        idx = self.nearest(flat.detach().float())  # (B*H*W,)
        one_hot = F.one_hot(idx, self.num_codes).type(flat.dtype)  # (B*H*W, K)
        if self.ema and self.training:
            self._ema_update(flat.detach(), one_hot)
        z_q = F.embedding(idx, self.codebook).view(b, h, w, d).permute(0, 3, 1, 2)  # (B, D, H, W)
        commitment = F.mse_loss(z_e, z_q.detach())  # ||z_e - sg[e]||^2
        if self.ema:
            codebook_loss = z_e.new_zeros(())
        else:
            codebook_loss = F.mse_loss(z_q, z_e.detach())  # ||sg[z_e] - e||^2
        z_st = z_e + (z_q - z_e).detach()  # straight-through: forward z_q, gradient to z_e
        probs = one_hot.mean(0)  # (K,) code usage in the batch
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())  # exp(H(p))
        return Quantized(z_st, codebook_loss, commitment, idx.view(b, h, w), perplexity)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, one_hot: Tensor) -> None:
        with torch.autocast(flat.device.type, enabled=False):  # the sums in fp32, not in autocast's bf16/fp16
            count = one_hot.sum(0).float()  # n_j, (K,)
            total = one_hot.t().float() @ flat.float()  # sum of assigned z_e, (K, D)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            dist.all_reduce(total)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)  # N_j
        self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)  # m_j
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace-smoothed N_j
        self.codebook.copy_(self.ema_sum / smoothed[:, None])  # e_j = m_j / N_j
        if self.restart_threshold > 0:
            self._restart_dead(flat)

    @torch.no_grad()
    def _restart_dead(self, flat: Tensor) -> None:
        # Without a host sync: every code gets a candidate, and only the dead ones take it.
        dead = self.ema_count < self.restart_threshold  # equal on every rank: the counts were all-reduced
        pick = torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)
        new = flat[pick].float().contiguous()
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(new, 0)  # every rank takes rank 0's choice, so the codebooks stay equal
        self.codebook.copy_(torch.where(dead[:, None], new.to(self.codebook.dtype), self.codebook))
        # A restarted code survives the next update only if at least restart_threshold vectors choose it.
        self.ema_count.masked_fill_(dead, self.restart_threshold)
        self.ema_sum.copy_(
            torch.where(dead[:, None], self.restart_threshold * new.to(self.ema_sum.dtype), self.ema_sum)
        )


class ResidualStack(nn.Module):
    """``num_blocks`` residual blocks ``x + conv1x1(relu(conv3x3(relu(x))))``, then a ReLU (as in the paper)."""

    def __init__(self, channels: int, hidden: int, num_blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(), nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, channels, 1)
            )
            for _ in range(num_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x)
        return F.relu(x)


class VQOutput(NamedTuple):
    """What :meth:`VQVAE.forward` returns."""

    recon: Tensor  # (B, C, H, W)
    codebook_loss: Tensor
    commitment_loss: Tensor
    perplexity: Tensor
    indices: Tensor  # (B, H', W')


class VQVAE(ImageInput, nn.Module):
    r"""VQ-VAE with the paper's encoder/decoder: strided convs, residual stacks, a 1x1 projection to codes.

    Args:
        in_channels: image channels (default 1).
        image_size: image side or ``(H, W)``, divisible by :math:`2^{\text{downsample}}` (default 28).
        hidden: convolution width (default 64).
        res_hidden: width inside residual blocks (default 32).
        num_res_blocks: residual blocks in encoder and decoder (default 2).
        downsample: number of stride-2 stages, 28 -> 7 for 2 (default 2).
        num_codes: codebook size :math:`K` (default 512).
        code_dim: code vector size :math:`D` (default 64).
        ema: moving-average codebook updates (default False).
        decay: EMA decay (default 0.99).
        restart_threshold: move EMA codes used by fewer vectors per batch to encoder outputs (default 0, off).
        output: output activation (default ``"sigmoid"`` for data in [0, 1]).

    Shapes:
        input :math:`(B, C, H, W)`; codes :math:`(B, H/2^k, W/2^k)`; output :math:`(B, C, H, W)`.
    """

    is_conditional = False
    num_classes = 0

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | Sequence[int] = 28,
        hidden: int = 64,
        res_hidden: int = 32,
        num_res_blocks: int = 2,
        downsample: int = 2,
        num_codes: int = 512,
        code_dim: int = 64,
        ema: bool = False,
        decay: float = 0.99,
        output: str = "sigmoid",
        restart_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        h, w = image_hw(image_size)
        self.latent_hw = downsampled_hw((h, w), downsample, "VQVAE")
        self.x_shape = (in_channels, h, w)
        self.data_range = check_output(output)
        enc: list[nn.Module] = []
        c = in_channels
        for i in range(downsample):
            out = hidden if i == downsample - 1 else hidden // 2
            enc += [nn.Conv2d(c, out, 4, 2, 1), nn.ReLU()]
            c = out
        enc += [nn.Conv2d(c, hidden, 3, padding=1), ResidualStack(hidden, res_hidden, num_res_blocks)]
        enc.append(nn.Conv2d(hidden, code_dim, 1))  # z_e: (B, D, H', W')
        self.encoder = nn.Sequential(*enc)
        self.quantizer = VectorQuantizer(num_codes, code_dim, ema=ema, decay=decay, restart_threshold=restart_threshold)
        dec: list[nn.Module] = [
            nn.Conv2d(code_dim, hidden, 3, padding=1),
            ResidualStack(hidden, res_hidden, num_res_blocks),
        ]
        c = hidden
        for i in range(downsample):
            last = i == downsample - 1
            out = in_channels if last else hidden // 2
            dec.append(nn.ConvTranspose2d(c, out, 4, 2, 1))
            if not last:
                dec.append(nn.ReLU())
            c = out
        self.decoder = nn.Sequential(*dec)
        self.out_act = get_activation(output)

    def forward_features(self, x: Tensor) -> Tensor:
        """Continuous encoder output :math:`z_e(x)`, ``(B, D, H', W')``."""
        return self.encoder(x)

    def encode(self, x: Tensor) -> Tensor:
        """Code indices ``(B, H', W')``."""
        return self.quantizer(self.encoder(x)).indices

    def decode(self, indices: Tensor) -> Tensor:
        """Image from code indices ``(B, H', W')``."""
        return self.out_act(self.decoder(self.quantizer.codes(indices)))

    def decode_features(self, z_e: Tensor) -> Tensor:
        """Image from continuous encoder outputs ``(B, D, H', W')``, each position snapped to its nearest code."""
        return self.out_act(self.decoder(self.quantizer(z_e).z_q))

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode_features(self.encoder(x))

    def forward(self, x: Tensor) -> VQOutput:
        q = self.quantizer(self.encoder(x))
        recon = self.out_act(self.decoder(q.z_q))
        return VQOutput(recon, q.codebook_loss, q.commitment_loss, q.perplexity, q.indices)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode codes drawn from the uniform prior that training assumes, ``(n, C, H, W)``.

        These look like noise: good samples need a learned autoregressive prior
        over the code grid (a PixelCNN in the paper), which this model does not include.
        """
        dev = self.quantizer.codebook.device
        g_dev = generator.device if generator is not None else dev
        idx = torch.randint(0, self.quantizer.num_codes, (n, *self.latent_hw), generator=generator, device=g_dev)
        return self.decode(idx.to(dev))


@register_model("vqvae")
@variant(
    VQVAE, ("in_channels", "image_size", "hidden", "num_codes", "code_dim", "ema", "downsample", "restart_threshold")
)
def vqvae(**kwargs: Any) -> VQVAE:
    """VQ-VAE with a 512 x 64 codebook on a 7x7 grid for 28x28 images."""
    return VQVAE(**kwargs)
