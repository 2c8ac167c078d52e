"""Tests for archzoo.viz.grid: PNG grids decode with PIL at the expected size and values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archzoo.models.autoencoder import MLPAutoencoder
from archzoo.models.vae import MLPVAE
from archzoo.models.vqvae import VQVAE
from archzoo.viz.grid import (
    save_image_grid,
    save_interpolation_grid,
    save_latent_scatter,
    save_point_scatter,
    save_reconstructions,
    tile,
)


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_grayscale_grid_size_and_values(tmp_path: Path) -> None:
    imgs = torch.full((6, 1, 5, 7), -1.0)
    imgs[1] = 1.0
    path = save_image_grid(imgs, tmp_path / "sub" / "g.png", nrow=3, value_range=(-1, 1))
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "L"
        assert img.size == (3 * (7 + 2) + 2, 2 * (5 + 2) + 2)  # (width, height)
        a = np.asarray(img)
    assert a[2, 2] == 0  # first tile: -1 -> black
    assert a[2, 2 + 9] == 255  # second tile: +1 -> white
    assert a[0, 0] == 255  # white padding


def test_rgb_grid_default_rows(tmp_path: Path) -> None:
    with Image.open(save_image_grid(torch.rand(5, 3, 4, 4), tmp_path / "rgb.png")) as img:
        assert img.mode == "RGB" and img.size == (3 * 6 + 2, 2 * 6 + 2)  # ceil(sqrt(5)) = 3 per row
    with pytest.raises(ValueError):
        save_image_grid(torch.rand(2, 2, 4, 4), tmp_path / "bad.png")


def test_tile_places_images_row_by_row() -> None:
    imgs = torch.arange(4.0).reshape(4, 1, 1, 1) / 4
    g = tile(imgs, nrow=2, padding=1, pad_value=1.0)
    assert g.shape == (1, 5, 5)
    assert [g[0, 1, 1].item(), g[0, 1, 3].item(), g[0, 3, 1].item(), g[0, 3, 3].item()] == [0.0, 0.25, 0.5, 0.75]


def test_reconstructions_and_interpolations(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ae = MLPAutoencoder(1, 4, hidden_dims=(8,), latent_dim=2)
    x = torch.rand(3, 1, 4, 4)
    assert _png_size(save_reconstructions(ae, x, tmp_path / "rec.png")) == (
        6 * 6 + 2,
        1 * 6 + 2,
    )  # 3 (input, reconstruction) pairs in one row
    vae = MLPVAE(1, 4, hidden_dims=(8,), latent_dim=2)
    inter = save_interpolation_grid(vae, x[:2], x[1:], steps=5, path=tmp_path / "int.png")
    assert _png_size(inter) == (5 * 6 + 2, 2 * 6 + 2)  # one row per pair, 5 steps
    assert ae.training and vae.training  # modes are restored


def test_vqvae_interpolation_mixes_encoder_outputs_and_quantises(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vq = VQVAE(1, 8, hidden=8, res_hidden=4, num_res_blocks=1, num_codes=16, code_dim=4).eval()
    x = torch.rand(2, 1, 8, 8)
    path = save_interpolation_grid(vq, x[:1], x[1:], steps=4, path=tmp_path / "vq.png")
    assert _png_size(path) == (4 * 10 + 2, 1 * 10 + 2)  # one pair, 4 steps of 8x8 tiles
    with Image.open(path) as img:
        grid = torch.from_numpy(np.asarray(img).astype(np.float32) / 255.0)
    # The end columns are the reconstructions of the two inputs (8-bit PNG precision).
    rec = vq.reconstruct(x)[:, 0]
    assert torch.allclose(grid[2:10, 2:10], rec[0], atol=1 / 255 + 1e-6)
    assert torch.allclose(grid[2:10, 32:40], rec[1], atol=1 / 255 + 1e-6)


def test_scatter_plots_decode(tmp_path: Path) -> None:
    vae = MLPVAE(1, 4, hidden_dims=(8,), latent_dim=2)
    p = save_latent_scatter(vae, torch.rand(20, 1, 4, 4), torch.arange(20) % 3, tmp_path / "lat.png")
    assert _png_size(p) == (500, 500)
    q = save_point_scatter(torch.randn(50, 2), tmp_path / "pts.png")
    assert _png_size(q) == (400, 400)
