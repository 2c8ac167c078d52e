"""Tests for archzoo.models.unet: shapes, attention placement, the null class."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers.attention import SelfAttention2d
from archzoo.models.unet import UNet


@pytest.mark.parametrize("size,mults", [(28, (1, 2, 2)), (32, (1, 2, 2)), (8, (1, 2))])
def test_output_shape_matches_input(size: int, mults: tuple[int, ...]) -> None:
    m = UNet(1, size, base_channels=8, channel_mults=mults, num_res_blocks=1)
    x = torch.randn(2, 1, size, size)
    out = m(x, torch.tensor([1, 500]))
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output conv


def test_attention_only_at_the_lowest_resolution() -> None:
    m = UNet(1, 28, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1)
    attn_down = [b.attn is not None for b in m.down if hasattr(b, "attn")]
    assert attn_down == [False, False, True]  # 28, 14, 7
    assert m.mid[0].attn is not None
    none = UNet(1, 28, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1, attn_resolutions=())
    assert not any(isinstance(mod, SelfAttention2d) for mod in none.modules())
    with pytest.raises(UserError):
        UNet(1, 30, channel_mults=(1, 2, 2))


def test_class_embedding_and_null_class() -> None:
    torch.manual_seed(0)
    m = UNet(1, 8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, num_classes=3)
    assert m.is_conditional and m.class_emb.num_embeddings == 4  # 3 classes + null
    t = torch.tensor([5, 5])
    torch.testing.assert_close(m.embed(t, None), m.embed(t, torch.tensor([3, 3])))  # None is the null class
    assert not torch.allclose(m.embed(t, torch.tensor([0, 0])), m.embed(t, None))
    assert not UNet(1, 8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1).is_conditional
