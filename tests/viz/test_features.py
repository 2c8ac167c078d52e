"""archzoo viz features: one PNG grid per stage and the first layer's filters; one-sentence errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archzoo.cli import main
from archzoo.viz.features import save_feature_map


def _digit_png(path: Path) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    Image.fromarray((d.images[7] * 255 / 16).astype(np.uint8), mode="L").save(path)
    return path


def _size(n: int, side: int) -> int:
    """Side in pixels of the square grid of n square maps: ceil(sqrt(n)) per row, tiles >= 48 px, 2 px padding."""
    per_row = int(np.ceil(np.sqrt(n)))
    tile = side * int(np.ceil(48 / side))
    return per_row * (tile + 2) + 2


def test_feature_maps_and_filters_of_a_cnn_run(digits_run: Path, tmp_path: Path) -> None:
    png = _digit_png(tmp_path / "seven.png")
    out = tmp_path / "viz"
    r = subprocess.run(
        [sys.executable, "-m", "archzoo", "viz", "features", str(digits_run), str(png), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    written = [Path(p) for p in r.stdout.split()]
    assert [p.name for p in written] == ["features_block1.png", "features_block2.png", "filters_first_layer.png"]
    assert all(p.parent == out for p in written)
    # digits-cnn: convnet with 32 and 64 channels on 8x8 digits (block2 after a 2x2 pool: 4x4); 3x3 first kernels.
    want = {"features_block1.png": _size(32, 8), "features_block2.png": _size(64, 4), "filters_first_layer.png": 302}
    assert want["features_block1.png"] == 6 * 50 + 2 and want["features_block2.png"] == 8 * 50 + 2
    for p in written:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert im.size == (want[p.name], want[p.name]), p.name
            arr = np.asarray(im)
        assert arr.std() > 10  # an image, not a blank


def test_grid_arithmetic_for_odd_shapes_and_many_channels(tmp_path: Path) -> None:
    # 5 maps of 3x7: 3 per row, 2 rows; factor ceil(48/7) = 7 gives 21x49 tiles.
    with Image.open(save_feature_map(torch.randn(1, 5, 3, 7), tmp_path / "a.png")) as im:
        assert im.size == (3 * (49 + 2) + 2, 2 * (21 + 2) + 2)
    # 100 channels: only the first 64 are drawn (8x8); 60 px maps are not upscaled.
    with Image.open(save_feature_map(torch.randn(100, 60, 60), tmp_path / "b.png")) as im:
        assert im.size == (8 * 62 + 2, 8 * 62 + 2)


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("archzoo: error: "), captured.err
    assert captured.out == ""
    return lines[0]


def test_errors_are_one_sentence(digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = _digit_png(tmp_path / "d.png")
    assert "Cannot read image" in _error(capsys, "viz", "features", str(digits_run), str(tmp_path / "none.png"))
    assert "not a run directory" in _error(capsys, "viz", "features", str(tmp_path), str(png))
    assert "viz features RUN IMAGE" in _error(capsys, "viz")
    mlp = tmp_path / "mlp"
    assert main(["train", "digits-mlp", "train.epochs=1", "log.progress=none", "log.plots=false", "train.threads=1",
                 "--run-dir", str(mlp)]) == 0  # fmt: skip
    capsys.readouterr()
    assert "has no feature_maps()" in _error(capsys, "viz", "features", str(mlp), str(png))
