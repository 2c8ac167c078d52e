"""Tests for archzoo.layers.norm: norms by name and the dividing group count."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.norm import NORMS_2D, group_norm, norm_2d


def test_group_norm_uses_a_dividing_group_count() -> None:
    assert group_norm(64, 8).num_groups == 8
    assert group_norm(12, 8).num_groups == 4  # gcd(8, 12)
    assert group_norm(7, 8).num_groups == 1


def test_norm_2d_kinds() -> None:
    assert isinstance(norm_2d("batch", 6), nn.BatchNorm2d)
    assert norm_2d("layer", 6).num_groups == 1
    assert norm_2d("instance", 6).num_groups == 6
    assert norm_2d("group", 12, groups=8).num_groups == 4
    assert isinstance(norm_2d("none", 6), nn.Identity)
    with pytest.raises(UserError, match="Unknown norm"):
        norm_2d("weird", 6)


@pytest.mark.parametrize("kind", [k for k in NORMS_2D if k not in ("batch", "none")])
def test_per_sample_norms_do_not_mix_samples(kind: str) -> None:
    norm = norm_2d(kind, 4, groups=2)
    x = torch.randn(3, 4, 5, 5)
    torch.testing.assert_close(norm(x)[:1], norm(x[:1]))


def test_layer_norm_matches_functional_layer_norm() -> None:
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(norm_2d("layer", 4)(x), nn.functional.layer_norm(x, x.shape[1:]), atol=1e-5, rtol=1e-5)
