"""Tests for archzoo.layers.conv: conv-BN-act and the strided stacks of the generative models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.conv import ConvBNAct, conv_decoder, conv_encoder, up_block


def test_conv_bn_act_keeps_the_size_and_drops_the_bias_before_bn() -> None:
    block = ConvBNAct(3, 8, 3)
    assert block[0].bias is None and isinstance(block[1], nn.BatchNorm2d)
    assert block(torch.randn(2, 3, 9, 9)).shape == (2, 8, 9, 9)
    assert ConvBNAct(3, 8, 3, stride=2, norm=False, act=None)[0].bias is not None


def test_encoder_and_decoder_mirror_each_other() -> None:
    x = torch.randn(2, 1, 28, 28)
    z = conv_encoder(1, (8, 16))(x)
    assert z.shape == (2, 16, 7, 7)
    assert conv_decoder(1, (8, 16))(z).shape == x.shape


@pytest.mark.parametrize("mode", ["transposed", "nearest"])
def test_up_block_doubles_the_resolution(mode: str) -> None:
    assert up_block(4, 2, mode=mode)(torch.randn(1, 4, 5, 5)).shape == (1, 2, 10, 10)
    with pytest.raises(UserError, match="upsampling"):
        up_block(4, 2, mode="bilinear")
