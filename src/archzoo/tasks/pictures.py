"""What the generative tasks show, computed as data (:class:`~archzoo.tasks.base.Picture`); viz draws it.

Reconstructions beside their inputs, latent interpolations and 2-D latent means
need the model; these functions run it and hand the tensors to
:func:`archzoo.viz.grid.draw`, so the tasks never import viz.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from archzoo.tasks.base import Picture
from archzoo.utils import unwrap


def model_range(model: nn.Module) -> tuple[float, float] | None:
    return getattr(unwrap(model), "data_range", (0.0, 1.0))


def latent(model: nn.Module, x: Tensor) -> Tensor:
    """Autoencoder code, or a VAE's posterior mean."""
    z = model.encode(x)
    return z[0] if isinstance(z, tuple) else z


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def reconstructions(model: nn.Module, x: Tensor, path: Path, pairs_per_row: int = 8) -> Picture:
    """Inputs beside their reconstructions: pairs (input, ``model.reconstruct(input)``); ``x`` in the model's range."""
    model = unwrap(model)
    was = model.training
    model.eval()
    try:
        x = x.to(_device(model))
        rec = model.reconstruct(x)
    finally:
        model.train(was)
    both = torch.stack([x, rec], dim=1).flatten(0, 1)  # (2N, C, H, W): x0, r0, x1, r1, ...
    return Picture(Path(path), "grid", both, nrow=2 * min(pairs_per_row, x.shape[0]), value_range=model_range(model))


@torch.no_grad()
def interpolation(model: nn.Module, x_a: Tensor, x_b: Tensor, steps: int, path: Path) -> Picture:
    r"""Decode the straight line between the latents of ``x_a`` and ``x_b``: one row per pair, ``steps`` columns.

    :math:`z_\lambda = (1 - \lambda) z_a + \lambda z_b` for ``steps`` values of :math:`\lambda` in [0, 1];
    works for autoencoders (``encode -> z``), VAEs (``encode -> (mu, logvar)``, the mean is used) and
    VQ-VAEs (the continuous encoder outputs are mixed and every mix is quantised before decoding).
    """
    model = unwrap(model)
    if x_a.dim() == 3:
        x_a, x_b = x_a[None], x_b[None]
    if hasattr(model, "decode_features"):  # discrete codes cannot be mixed; their continuous sources can
        encode, decode = model.forward_features, model.decode_features
    else:
        encode, decode = partial(latent, model), model.decode
    was = model.training
    model.eval()
    try:
        dev = _device(model)
        za, zb = encode(x_a.to(dev)), encode(x_b.to(dev))  # (N, *latent)
        lam = torch.linspace(0.0, 1.0, steps, device=dev).view(1, steps, *[1] * (za.dim() - 1))
        z = (1 - lam) * za[:, None] + lam * zb[:, None]  # (N, S, *latent)
        imgs = decode(z.flatten(0, 1))  # (N*S, C, H, W), row-major per pair
    finally:
        model.train(was)
    return Picture(Path(path), "grid", imgs, nrow=steps, value_range=model_range(model))


@torch.no_grad()
def latent_means(model: nn.Module, x: Tensor, y: Tensor | None, path: Path, title: str | None = None) -> Picture:
    """The latent codes (a VAE's posterior means) of ``x``, to scatter by their first two coordinates."""
    model = unwrap(model)
    was = model.training
    model.eval()
    try:
        z = latent(model, x.to(_device(model))).float().cpu()
    finally:
        model.train(was)
    if z.shape[1] < 2:
        raise ValueError("a latent scatter needs a latent of at least 2 dimensions")
    return Picture(Path(path), "latents", z, labels=None if y is None else y.cpu(), title=title or "latent means")
