"""Image grids for generative models: samples, reconstructions, interpolations, 2-D latents.

Every function writes one PNG with Pillow (or matplotlib for the scatter) and
returns its path; :func:`draw` draws the pictures tasks ask for
(:class:`~archzoo.tasks.base.Picture`), which they compute without importing viz. Images are tensors ``(N, C, H, W)`` with values in
``value_range``, which for a model is its ``data_range`` attribute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from archzoo.tasks import pictures
from archzoo.tasks.base import Picture
from archzoo.viz.figure import save_figure

PathLike = str | Path


def tile(images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """Arrange ``(N, C, H, W)`` images in [0, 1] row by row, ``nrow`` per row, into one ``(C, H', W')`` image.

    ``nrow`` defaults to :math:`\\lceil\\sqrt N\\rceil`; ``padding`` pixels of ``pad_value`` separate the tiles.
    """
    n, c, h, w = images.shape
    nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / nrow)
    out = images.new_full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        out[:, y : y + h, x : x + w] = images[i]
    return out


def to_unit(images: Tensor, value_range: Sequence[float] | None) -> Tensor:
    """Map ``images`` from ``value_range`` to [0, 1] (None: their own min and max) and clamp."""
    x = images.detach().float().cpu()
    if value_range is None:
        lo, hi = float(x.min()), float(x.max())
    else:
        lo, hi = float(value_range[0]), float(value_range[1])
    return ((x - lo) / max(hi - lo, 1e-12)).clamp(0.0, 1.0)


def save_image_grid(
    images: Tensor,
    path: PathLike,
    nrow: int | None = None,
    value_range: Sequence[float] | None = (0.0, 1.0),
    padding: int = 2,
) -> Path:
    """Write ``images`` ``(N, C, H, W)`` as one PNG grid; 1-channel images become grayscale, 3-channel RGB.

    Args:
        images: the images; ``(N, H, W)`` is read as one channel.
        path: the PNG file (parent folders are created).
        nrow: images per row (default :math:`\\lceil\\sqrt N\\rceil`).
        value_range: the ``(lo, hi)`` that maps to black and white; None uses the images' min and max.
        padding: pixels between tiles.
    """
    if images.dim() == 3:
        images = images[:, None]
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    grid = tile(to_unit(images, value_range), nrow, padding)  # (C, H', W')
    arr = (grid * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # (H', W', C)
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)  # uint8 (H, W) -> L, (H, W, 3) -> RGB
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path


def draw(picture: Picture) -> Path:
    """Draw a task's :class:`~archzoo.tasks.base.Picture` to its path; returns the path."""
    if picture.kind == "grid":
        return save_image_grid(picture.data, picture.path, nrow=picture.nrow, value_range=picture.value_range)
    if picture.kind == "points":
        return save_point_scatter(picture.data, picture.path, title=picture.title or "samples")
    if picture.kind == "latents":
        return save_latent_points(picture.data, picture.labels, picture.path, title=picture.title)
    if picture.kind == "graphs":  # adjacency matrices (G, M, M), node counts in labels
        from archzoo.viz.graphs import save_graph_drawings

        return save_graph_drawings(picture.data, picture.labels, picture.path, title=picture.title)
    raise ValueError(f"unknown picture kind '{picture.kind}'")


def save_reconstructions(model: nn.Module, x: Tensor, path: PathLike, pairs_per_row: int = 8) -> Path:
    """Inputs beside their reconstructions (:func:`archzoo.tasks.pictures.reconstructions`), as one PNG."""
    return draw(pictures.reconstructions(model, x, Path(path), pairs_per_row))


def save_interpolation_grid(model: nn.Module, x_a: Tensor, x_b: Tensor, steps: int, path: PathLike) -> Path:
    """Latent interpolations (:func:`archzoo.tasks.pictures.interpolation`), one row per pair."""
    return draw(pictures.interpolation(model, x_a, x_b, steps, Path(path)))


def save_latent_scatter(
    model: nn.Module, x: Tensor, y: Tensor | None, path: PathLike, title: str | None = None
) -> Path:
    """Scatter the first two latent coordinates of ``x`` (a VAE's posterior means), coloured by label ``y``."""
    return draw(pictures.latent_means(model, x, y, Path(path), title))


def save_latent_points(z: Tensor, y: Tensor | None, path: PathLike, title: str | None = None) -> Path:
    """Scatter the first two coordinates of codes ``z`` ``(N, >=2)``, coloured by label ``y``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    zz = z.detach().float().cpu().numpy()
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if y is None:
        ax.scatter(zz[:, 0], zz[:, 1], s=3, alpha=0.6)
    else:
        labels = np.asarray(y.cpu())
        sc = ax.scatter(zz[:, 0], zz[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7)
        fig.colorbar(sc, ax=ax, label="class")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title or "latent means")
    return save_figure(fig, path, format="png")


def save_point_scatter(points: Tensor, path: PathLike, title: str = "samples") -> Path:
    """Scatter 2-D samples to a PNG (matplotlib, Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p = points.detach().float().cpu().numpy()
    fig = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5)
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    return save_figure(fig, path, format="png")
