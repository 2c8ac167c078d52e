import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.attention_conv import SpatialAttentionConv2d, SpatialGate


def test_spatial_gate_matches_hand_computation():
    torch.manual_seed(0)
    gate = SpatialGate(kernel_size=5)
    x = torch.randn(2, 6, 7, 9)
    pooled = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True).values], dim=1)
    m = torch.sigmoid(F.conv2d(pooled, gate.conv.weight, padding=2))
    torch.testing.assert_close(gate.attention_map(x), m, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gate(x), x * m, atol=1e-6, rtol=1e-5)
    assert m.shape == (2, 1, 7, 9) and (m > 0).all() and (m < 1).all()


def test_spatial_attention_conv_is_conv_then_gate():
    torch.manual_seed(1)
    block = SpatialAttentionConv2d(3, 8, 3, stride=2).eval()
    x = torch.randn(2, 3, 16, 16)
    y = block(x)
    assert y.shape == (2, 8, 8, 8)
    h = block.conv(x)
    torch.testing.assert_close(y, h * block.attention_map(x), atol=1e-6, rtol=1e-5)
    assert block.attention_map(x).shape == (2, 1, 8, 8)


def test_gate_depends_on_position():
    torch.manual_seed(2)
    gate = SpatialGate()
    x = torch.zeros(1, 4, 8, 8)
    x[..., :4, :4] = 5.0  # one bright corner
    m = gate.attention_map(x)
    assert not torch.allclose(m[..., 0, 0], m[..., 7, 7])


def test_backward_and_bad_kernel():
    block = SpatialAttentionConv2d(2, 4)
    block(torch.randn(2, 2, 6, 6)).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    with pytest.raises(UserError):
        SpatialGate(kernel_size=4)
