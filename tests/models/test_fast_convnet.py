"""convnet_fast: pool-first blocks, the flattened head, and its refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.models.cnn import FastConvNet, PoolFirstBlock
from archzoo.registry import create_model


def test_convnet_fast_has_29178_parameters_and_a_3x3_map_at_28px() -> None:
    model = create_model("convnet_fast")
    assert sum(p.numel() for p in model.parameters()) == 29_178
    x = torch.randn(4, 1, 28, 28)
    assert model.forward_features(x).shape == (4, 64, 3, 3)
    assert model(x).shape == (4, 10)
    assert model.classifier.in_features == 64 * 3 * 3


def test_a_block_pools_before_its_batch_norm_and_activation() -> None:
    torch.manual_seed(0)
    block = PoolFirstBlock(3, 5).eval()
    with torch.no_grad():
        block[2].running_mean.uniform_(-1, 1)
        block[2].running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    conv, bn = block[0], block[2]
    expected = F.relu(bn(F.max_pool2d(F.conv2d(x, conv.weight, padding=1), 2)))
    torch.testing.assert_close(block(x), expected)
    assert block(x).shape == (2, 5, 4, 4)


def test_the_head_follows_the_image_size_and_the_block_count() -> None:
    model = FastConvNet(in_channels=3, num_classes=7, channels=(8, 16), image_size=32)
    assert model.classifier.in_features == 16 * 8 * 8
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(UserError, match="below one pixel"):
        FastConvNet(channels=(4, 4, 4, 4, 4), image_size=28)
    with pytest.raises(UserError, match="at least one block"):
        FastConvNet(channels=())
