"""Tests for archzoo.data.images: normalisation modes, black padding, the hold-out and the bundle."""

from __future__ import annotations

import pytest
import torch

from archzoo.data import images
from archzoo.errors import UserError


def test_normalization_modes() -> None:
    assert images.normalization("standard", (0.3, 0.4), (0.2, 0.1)) == ((0.3, 0.4), (0.2, 0.1))
    assert images.normalization("unit", (0.3, 0.4), (0.2, 0.1)) == ((0.0, 0.0), (1.0, 1.0))
    assert images.normalization("symmetric", (0.3,), (0.2,)) == ((0.5,), (0.5,))
    with pytest.raises(UserError, match="Unknown normalize"):
        images.normalization("imagenet", (0.3,), (0.2,))


def test_normalize_images_per_channel() -> None:
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = images.normalize_images(x, (0.0, 0.5, 0.2), (1.0, 0.5, 0.1))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 2, 2)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_black_level_and_black_padding_per_channel() -> None:
    assert images.black_level((0.5, 0.2), (0.25, 0.1)) == pytest.approx((-2.0, -2.0))  # (0 - mean) / std
    aug = images.image_augment({"crop_padding": 2}, (-2.0, -1.0))
    assert aug is not None
    x = torch.zeros(64, 2, 4, 4)
    y = aug(x, torch.Generator().manual_seed(0))
    # padded pixels take each channel's own black level; the image itself stays 0
    assert set(y[:, 0].unique().tolist()) <= {-2.0, 0.0} and set(y[:, 1].unique().tolist()) <= {-1.0, 0.0}
    assert (y[:, 0] == -2.0).any() and (y[:, 1] == -1.0).any()
    assert images.image_augment(None, (-2.0, -1.0)) is None


def test_split_holdout_is_disjoint_and_covers() -> None:
    x, y = torch.arange(20).view(20, 1), torch.arange(20)
    (xt, yt), (xv, yv) = images.split_holdout(x, y, 0.25, seed=3)
    assert len(yv) == 5 and len(yt) == 15
    assert sorted(torch.cat([yt, yv]).tolist()) == list(range(20))
    assert torch.equal(xt[:, 0], yt) and torch.equal(xv[:, 0], yv)


def test_image_bundle_normalises_and_records_the_statistics() -> None:
    x = torch.full((4, 1, 2, 2), 255, dtype=torch.uint8)
    y = torch.arange(4, dtype=torch.uint8)
    b = images.image_bundle(
        (x, y), (x[:1], y[:1]), None, mean=(0.5,), std=(0.5,), augment={"flip": True}, info={"k": 1}
    )
    assert b.info == {"k": 1, "mean": [0.5], "std": [0.5]}
    xs, ys = b.train.tensors
    torch.testing.assert_close(xs, torch.ones(4, 1, 2, 2))
    assert ys.dtype == torch.int64
    assert b.train.augment is not None and b.val.augment is None and b.test is None


def test_check_image_args() -> None:
    images.check_image_args(0.1, "standard", 10)
    with pytest.raises(UserError, match="val_fraction"):
        images.check_image_args(1.0, "standard")
    with pytest.raises(UserError, match="limit"):
        images.check_image_args(0.1, "unit", 0)
    with pytest.raises(UserError, match="normalize"):
        images.check_image_args(0.1, "imagenet")
