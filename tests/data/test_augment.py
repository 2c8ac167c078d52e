"""Tests for archzoo.data.augment: batched crop, flip and cutout against naive per-sample loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.data.augment import build_augment, cutout, random_crop, random_flip
from archzoo.errors import UserError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(b: int = 16, c: int = 3, h: int = 5, w: int = 7, seed: int = 1) -> torch.Tensor:
    # random values: every window of the padded image is distinguishable from every other
    return torch.randn(b, c, h, w, generator=_gen(seed))


def _find_window(out: torch.Tensor, xp: torch.Tensor, h: int, w: int) -> list[tuple[int, int]]:
    """All offsets (dy, dx) whose h×w window of the padded sample ``xp`` equals ``out`` (naive loop)."""
    return [
        (dy, dx)
        for dy in range(xp.shape[-2] - h + 1)
        for dx in range(xp.shape[-1] - w + 1)
        if torch.equal(xp[:, dy : dy + h, dx : dx + w], out)
    ]


@pytest.mark.parametrize(("padding", "fill"), [(1, 0.0), (2, 0.0), (3, -1.5)])
def test_random_crop_is_a_window_of_the_padded_input(padding: int, fill: float) -> None:
    x = _x()
    b, _, h, w = x.shape
    out = random_crop(x, _gen(3), padding, fill)
    assert out.shape == x.shape and out.is_contiguous()
    offsets = []
    for i in range(b):
        xp = F.pad(x[i], (padding,) * 4, value=fill)
        found = _find_window(out[i], xp, h, w)
        assert len(found) == 1, f"sample {i} is not exactly one window of its padded input"
        dy, dx = found[0]
        assert 0 <= dy <= 2 * padding and 0 <= dx <= 2 * padding
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # samples get their own offsets


def test_random_crop_offsets_cover_the_range() -> None:
    x = _x(b=200, c=1, h=4, w=4)
    out = random_crop(x, _gen(0), 1)
    offsets = set()
    for i in range(len(x)):
        (off,) = _find_window(out[i], F.pad(x[i], (1,) * 4), 4, 4)
        offsets.add(off)
    assert offsets == {(dy, dx) for dy in range(3) for dx in range(3)}


def test_random_crop_padding_zero_is_identity() -> None:
    x = _x()
    assert torch.equal(random_crop(x, _gen(), 0), x)


def test_random_crop_channels_last_input_matches() -> None:
    x = _x()
    a = random_crop(x, _gen(9), 2)
    b = random_crop(x.contiguous(memory_format=torch.channels_last), _gen(9), 2)
    assert torch.equal(a, b)


def test_random_flip_mirrors_about_half() -> None:
    x = _x(b=400, c=2, h=3, w=4)
    out = random_flip(x, _gen(2))
    flipped = 0
    for i in range(len(x)):
        same, mirrored = torch.equal(out[i], x[i]), torch.equal(out[i], x[i].flip(-1))
        assert same != mirrored  # exactly one of the two (inputs are not symmetric)
        flipped += mirrored
    assert 150 < flipped < 250
    assert torch.equal(random_flip(x, _gen(2), p=0.0), x)
    assert torch.equal(random_flip(x, _gen(2), p=1.0), x.flip(-1))


def _zero_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


@pytest.mark.parametrize("size", [3, 4, 5])
def test_cutout_blanks_a_size_by_size_square(size: int) -> None:
    h = w = 12
    x = torch.ones(64, 2, h, w)
    out = cutout(x, _gen(4), size)
    assert out.shape == x.shape
    interior = 0
    for i in range(len(x)):
        m = out[i, 0] == 0
        assert torch.equal(out[i, 1] == 0, m)  # the same square in every channel
        assert m.any()
        y0, y1, x0, x1 = _zero_box(m)
        assert m[y0:y1, x0:x1].all() and int(m.sum()) == (y1 - y0) * (x1 - x0)  # one filled rectangle
        assert y1 - y0 <= size and x1 - x0 <= size, f"sample {i}: blanked {y1 - y0}x{x1 - x0}, more than {size}x{size}"
        if 0 < y0 and y1 < h and 0 < x0 and x1 < w:  # not clipped by a border
            interior += 1
            assert (y1 - y0, x1 - x0) == (size, size), f"sample {i}: blanked {y1 - y0}x{x1 - x0}, not {size}x{size}"
    assert interior > 10


def test_cutout_fill_and_zero_size() -> None:
    x = torch.ones(8, 1, 6, 6)
    out = cutout(x, _gen(1), 3, fill=-2.0)
    assert set(out.unique().tolist()) == {-2.0, 1.0}
    assert torch.equal(cutout(x, _gen(1), 0), x)


def test_build_augment_none_and_noop_specs() -> None:
    assert build_augment(None) is None
    assert build_augment({}) is None
    assert build_augment({"flip": False, "crop_padding": 0, "cutout": 0}) is None


def test_build_augment_rejects_unknown_keys() -> None:
    with pytest.raises(UserError) as exc:
        build_augment({"flip": True, "rotate": 10})
    msg = str(exc.value)
    assert "rotate" in msg and "crop_padding" in msg and "\n" not in msg


def test_build_augment_composes_crop_flip_cutout_in_order() -> None:
    x = _x()
    aug = build_augment({"crop_padding": 2, "flip": True, "cutout": 3}, fill=0.5)
    assert aug is not None
    g = _gen(11)
    expected = cutout(random_flip(random_crop(x, g, 2, 0.5), g), g, 3, 0.5)
    assert torch.equal(aug(x, _gen(11)), expected)


def test_augmentation_is_deterministic_for_a_seed() -> None:
    x = _x()
    aug = build_augment({"crop_padding": 2, "flip": True, "cutout": 2})
    assert aug is not None
    a, b = aug(x, _gen(5)), aug(x, _gen(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, _gen(6)))
    assert torch.equal(x, _x())  # the input is not modified in place
