"""Tests for archzoo.utils: image sizes, seeded noise, unwrapping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.utils import downsampled_hw, image_hw, randn, unwrap


def test_image_hw_and_downsampled_hw() -> None:
    assert image_hw(28) == (28, 28) and image_hw((8, 12)) == (8, 12)
    assert downsampled_hw(28, 2, "X") == (7, 7)
    with pytest.raises(UserError, match="X needs an image size divisible by 4"):
        downsampled_hw((28, 30), 2, "X")


def test_randn_follows_the_generator() -> None:
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(randn((2, 3), g1, "cpu"), randn((2, 3), g2, "cpu"))
    assert randn((4,), None, "cpu").shape == (4,)


def test_unwrap_finds_the_plain_model() -> None:
    inner = nn.Linear(2, 2)
    outer = nn.Module()
    outer.module = inner
    assert unwrap(outer) is inner and unwrap(inner) is inner
