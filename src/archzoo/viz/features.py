"""What a trained CNN sees: the feature maps of each stage for one image, and the first layer's filters.

``archzoo viz features RUN IMAGE`` runs ``model.feature_maps(x)`` (the list of
``(stage name, (1, C, H, W) activation)`` that the CNN families share) and
writes one PNG per stage, ``features_<stage>.png``: up to 64 channels, each
min-max normalised on its own and coloured with viridis, tiled row by row
(:math:`\\lceil\\sqrt{n}\\rceil` per row), each tile upscaled (nearest
neighbour) by an integer factor so that it is at least :data:`TILE` pixels.
``filters_first_layer.png`` shows the kernels of the first ``Conv2d`` the same
way: RGB when they see 3 channels, else the mean over their input channels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.viz.grid import tile

TILE = 48  # smallest side of one upscaled map, pixels
PADDING = 2  # pixels between tiles
MAX_CHANNELS = 64


def upscale_factor(h: int, w: int, tile_px: int = TILE) -> int:
    """The integer nearest-neighbour factor that makes an ``h x w`` map at least ``tile_px`` on its long side."""
    return max(1, math.ceil(tile_px / max(h, w)))


def grid_size(n: int, h: int, w: int, tile_px: int = TILE, padding: int = PADDING) -> tuple[int, int]:
    """``(width, height)`` in pixels of the grid of ``n`` maps of ``h x w``."""
    s = upscale_factor(h, w, tile_px)
    nrow = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    return nrow * (w * s + padding) + padding, rows * (h * s + padding) + padding


def _minmax(x: Tensor) -> Tensor:
    """Normalise each of ``(N, ...)`` to [0, 1] on its own; a constant map becomes 0."""
    flat = x.flatten(1)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(x)


def _colormap(x: Tensor, name: str = "viridis") -> Tensor:
    """``(N, H, W)`` in [0, 1] -> ``(N, 3, H, W)`` RGB through a matplotlib colormap."""
    from matplotlib import colormaps

    rgba = colormaps[name](x.numpy())  # (N, H, W, 4) float64
    return torch.from_numpy(rgba[..., :3]).float().permute(0, 3, 1, 2)


def _save_tiles(tiles: Tensor, path: Path) -> Path:
    """Upscale ``(N, C, h, w)`` tiles in [0, 1] (C 1 or 3), tile them and write an RGB or grayscale PNG."""
    s = upscale_factor(*tiles.shape[-2:])
    big = tiles.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)  # nearest neighbour
    grid = tile(big, padding=PADDING, pad_value=1.0)  # (C, H', W')
    arr = (grid * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)).save(path, format="PNG")
    return path


def save_feature_map(fmap: Tensor, path: Path, max_channels: int = MAX_CHANNELS) -> Path:
    """One stage's activation ``(1, C, H, W)`` or ``(C, H, W)`` as a coloured grid of its first channels."""
    x = fmap.detach().float().cpu()
    if x.dim() == 4:
        x = x[0]
    if x.dim() != 3:
        raise ValueError(f"expected a (C, H, W) feature map, got shape {tuple(fmap.shape)}")
    return _save_tiles(_colormap(_minmax(x[:max_channels])), path)


def save_filters(conv: nn.Conv2d, path: Path, max_filters: int = MAX_CHANNELS) -> Path:
    """The kernels ``(out, in, k, k)`` of ``conv``: RGB tiles for 3 input channels, else their mean, coloured."""
    w = conv.weight.detach().float().cpu()[:max_filters]
    if w.shape[1] == 3:
        return _save_tiles(_minmax(w), path)
    return _save_tiles(_colormap(_minmax(w.mean(1))), path)


def first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


@torch.no_grad()
def write_features(model: nn.Module, x: Tensor, out: Path) -> list[Path]:
    """Write ``features_<stage>.png`` for each stage of ``model.feature_maps(x)`` and ``filters_first_layer.png``."""
    was = model.training
    model.eval()
    try:
        maps = model.feature_maps(x)
    finally:
        model.train(was)
    paths = []
    for name, fmap in maps:
        if fmap.dim() == 4:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            paths.append(save_feature_map(fmap, out / f"features_{safe}.png"))
    conv = first_conv(model)
    if conv is not None:
        paths.append(save_filters(conv, out / "filters_first_layer.png"))
    return paths


def viz_features(trainer: object, image: str | Path, out: Path | None = None) -> list[Path]:
    """Feature maps of a loaded run (``engine.run.load_run``) for one image file; returns the written PNGs."""
    from archzoo.data.imagefolder import load_image
    from archzoo.utils import unwrap

    model = unwrap(trainer.model)  # type: ignore[attr-defined]
    info = trainer.info  # type: ignore[attr-defined]
    run = trainer.run_dir  # type: ignore[attr-defined]
    name = trainer.cfg.model.name  # type: ignore[attr-defined]
    if not callable(getattr(model, "feature_maps", None)):
        raise UserError(f"Model '{name}' of run {run} has no feature_maps(), so its feature maps cannot be drawn.")
    if info.get("kind") != "image" or "in_channels" not in info:
        raise UserError(f"Run {run} was not trained on images; viz features takes an image model's run.")
    x = load_image(image, info["image_size"], info.get("mean", 0.0), info.get("std", 1.0), info["in_channels"])
    device = next(model.parameters()).device
    return write_features(model, x.to(device), Path(out) if out is not None else Path(run) / "features")
