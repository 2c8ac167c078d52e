import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.dynamic_conv import DynamicConv2d, DynamicConvBNAct


def naive_dynamic_conv(layer: DynamicConv2d, x: torch.Tensor) -> torch.Tensor:
    """Reference: a loop over samples, each convolved with its own attention-mixed kernel."""
    outs = []
    for xb in x:
        xb = xb[None]
        pooled = xb.mean(dim=(2, 3))
        z = layer.attention.fc2(torch.relu(layer.attention.fc1(pooled)))
        pi = torch.softmax(z / layer.attention.temperature, dim=1)[0]  # (K,)
        weight = sum(pi[k] * layer.weight[k] for k in range(layer.num_kernels))
        bias = sum(pi[k] * layer.bias[k] for k in range(layer.num_kernels)) if layer.bias is not None else None
        outs.append(F.conv2d(xb, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups))
    return torch.cat(outs)


@pytest.mark.parametrize("stride,groups,bias", [(1, 1, True), (2, 2, True), (1, 4, False)])
def test_single_kernel_equals_plain_conv(stride, groups, bias):
    torch.manual_seed(0)
    layer = DynamicConv2d(8, 12, 3, stride=stride, groups=groups, bias=bias, num_kernels=1)
    x = torch.randn(3, 8, 9, 9)
    b = layer.bias[0] if bias else None
    expected = F.conv2d(x, layer.weight[0], b, stride, 1, 1, groups)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride,groups,bias", [(1, 1, True), (2, 2, True), (1, 1, False)])
def test_matches_per_sample_reference(stride, groups, bias):
    torch.manual_seed(1)
    layer = DynamicConv2d(6, 10, 3, stride=stride, groups=groups, bias=bias, num_kernels=4, temperature=1.0)
    x = torch.randn(4, 6, 8, 8)
    out = layer(x)
    assert out.shape == (4, 10, 8 // stride, 8 // stride)
    torch.testing.assert_close(out, naive_dynamic_conv(layer, x), atol=1e-5, rtol=1e-5)


def test_attention_is_per_sample():
    torch.manual_seed(2)
    layer = DynamicConv2d(4, 5, 3, num_kernels=4, temperature=1.0)
    with torch.no_grad():
        layer.attention.fc2.weight.mul_(20)  # sharpen the attention so the mixes clearly differ
    x = torch.stack([torch.randn(4, 6, 6), 3 * torch.randn(4, 6, 6) + 1])
    pi = layer.attention(x)
    torch.testing.assert_close(pi.sum(dim=1), torch.ones(2))
    assert not torch.allclose(pi[0], pi[1], atol=1e-3)
    out = layer(x)
    # sample 1 convolved with sample 0's mix: what a kernel mix fixed across the batch would give
    fixed_w = (pi[0] @ layer.weight.flatten(1)).view(5, 4, 3, 3)
    fixed = F.conv2d(x[1:], fixed_w, pi[0] @ layer.bias, padding=1)
    assert not torch.allclose(out[1:], fixed, atol=1e-3)
    # no leakage across the batch: each sample's output is what it gets alone
    torch.testing.assert_close(out[1:], layer(x[1:]), atol=1e-5, rtol=1e-5)


def test_temperature_flattens_attention():
    torch.manual_seed(3)
    layer = DynamicConv2d(4, 4, num_kernels=4, temperature=1.0)
    with torch.no_grad():
        layer.attention.fc2.weight.mul_(50)
    x = torch.randn(2, 4, 5, 5)
    sharp = layer.attention(x)
    layer.set_temperature(1e6)
    flat = layer.attention(x)
    torch.testing.assert_close(flat, torch.full_like(flat, 0.25), atol=1e-4, rtol=0)
    assert sharp.max() > flat.max()


def test_backward_reaches_every_kernel_and_the_attention():
    torch.manual_seed(4)
    block = DynamicConvBNAct(3, 8, 3, stride=2, num_kernels=3)
    x = torch.randn(2, 3, 8, 8)
    y = block(x)
    assert y.shape == (2, 8, 4, 4)
    y.square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    conv = block[0]
    assert all(conv.weight.grad[k].abs().sum() > 0 for k in range(3))
    assert conv.attention.fc1.weight.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(UserError):
        DynamicConv2d(4, 4, num_kernels=0)
    with pytest.raises(UserError):
        DynamicConv2d(4, 6, groups=4)
