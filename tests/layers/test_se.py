import pytest
import torch
import torchvision
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.se import SqueezeExcitation


def test_se_matches_hand_computation():
    torch.manual_seed(0)
    se = SqueezeExcitation(8, reduction=4)
    x = torch.randn(3, 8, 5, 6)
    w1, b1 = se.fc1.weight.view(2, 8), se.fc1.bias
    w2, b2 = se.fc2.weight.view(8, 2), se.fc2.bias
    s = x.mean(dim=(2, 3))  # (B, C)
    gate = torch.sigmoid(torch.relu(s @ w1.T + b1) @ w2.T + b2)  # (B, C)
    expected = x * gate[:, :, None, None]
    torch.testing.assert_close(se(x), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(se.scale(x), gate[:, :, None, None], atol=1e-6, rtol=1e-5)


def test_se_squeeze_width_and_activations():
    assert SqueezeExcitation(64).fc1.out_channels == 4  # reduction 16
    assert SqueezeExcitation(64, reduction=8).fc1.out_channels == 8
    assert SqueezeExcitation(64, squeeze_channels=5).fc1.out_channels == 5
    assert SqueezeExcitation(3).fc1.out_channels == 1  # never below one channel
    se = SqueezeExcitation(16, 4, act="silu", gate=nn.Hardsigmoid())
    assert isinstance(se.activation, nn.SiLU) and isinstance(se.scale_activation, nn.Hardsigmoid)
    with pytest.raises(UserError):
        SqueezeExcitation(16, reduction=0)
    with pytest.raises(UserError):
        SqueezeExcitation(16, act="nope")


def test_se_loads_torchvision_weights_and_agrees():
    torch.manual_seed(0)
    ref = torchvision.ops.SqueezeExcitation(24, 6, activation=nn.SiLU)
    se = SqueezeExcitation(24, squeeze_channels=6, act="silu")
    se.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 24, 7, 7)
    torch.testing.assert_close(se(x), ref(x), atol=1e-6, rtol=1e-6)


def test_se_backward():
    se = SqueezeExcitation(8, reduction=2)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    se(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in se.parameters())
