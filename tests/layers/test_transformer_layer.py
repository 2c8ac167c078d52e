"""Tests for archzoo.layers.transformer (named apart from tests/models/test_transformer.py: tests/ has no packages): blocks equal torch's encoder and decoder layers with the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.layers.attention import KVCache, causal_mask
from archzoo.layers.positional import RotaryEmbedding
from archzoo.layers.transformer import FeedForward, TransformerBlock


def _copy_attention(ref: nn.MultiheadAttention, ours: torch.nn.Module) -> None:
    if hasattr(ours, "qkv"):
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
    else:
        ref.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
    ref.out_proj.weight.copy_(ours.out.weight)
    ref.out_proj.bias.copy_(ours.out.bias)


def _copy_common(ref: nn.Module, ours: TransformerBlock) -> None:
    ref.linear1.load_state_dict(ours.ff.fc1.state_dict())
    ref.linear2.load_state_dict(ours.ff.fc2.state_dict())
    ref.norm1.load_state_dict(ours.norm1.state_dict())


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_encoder_block_equals_torch_encoder_layer(norm_first: bool, activation: str) -> None:
    torch.manual_seed(0)
    ours = TransformerBlock(16, 4, 32, activation=activation, norm_first=norm_first).eval()
    ref = nn.TransformerEncoderLayer(16, 4, 32, 0.0, activation, batch_first=True, norm_first=norm_first).eval()
    with torch.no_grad():
        _copy_attention(ref.self_attn, ours.attn)
        _copy_common(ref, ours)
        ref.norm2.load_state_dict(ours.norm2.state_dict())
    x = torch.randn(3, 6, 16)
    pad = torch.ones(3, 6, dtype=torch.bool)
    pad[2, 3:] = False
    out, _ = ours(x, key_mask=pad)
    expected = ref(x, src_key_padding_mask=~pad)
    keep = pad[..., None].expand_as(out)  # torch's fast path may zero padded rows; compare the real ones
    torch.testing.assert_close(out[keep], expected[keep], atol=1e-5, rtol=1e-5)
    out_c, _ = ours(x, causal=True)
    torch.testing.assert_close(out_c, ref(x, src_mask=~causal_mask(6, 6)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_equals_torch_decoder_layer(norm_first: bool) -> None:
    torch.manual_seed(1)
    ours = TransformerBlock(16, 2, 24, activation="relu", norm_first=norm_first, cross=True).eval()
    ref = nn.TransformerDecoderLayer(16, 2, 24, 0.0, "relu", batch_first=True, norm_first=norm_first).eval()
    with torch.no_grad():
        _copy_attention(ref.self_attn, ours.attn)
        _copy_attention(ref.multihead_attn, ours.cross_attn)
        _copy_common(ref, ours)
        ref.norm2.load_state_dict(ours.norm_cross.state_dict())
        ref.norm3.load_state_dict(ours.norm2.state_dict())
    x, mem = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    mpad = torch.ones(2, 7, dtype=torch.bool)
    mpad[0, 5:] = False
    out, w = ours(x, mem, memory_mask=mpad, causal=True, need_weights=True)
    expected = ref(x, mem, tgt_mask=~causal_mask(5, 5), memory_key_padding_mask=~mpad)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert w is not None and w["self"].shape == (2, 2, 5, 5) and w["cross"].shape == (2, 2, 5, 7)
    assert (w["cross"][0, :, :, 5:] == 0).all()


def test_decoder_block_with_caches_equals_the_whole_pass() -> None:
    torch.manual_seed(2)
    rope = RotaryEmbedding(8, 16)
    block = TransformerBlock(16, 2, cross=True, rope=rope).eval()
    x, mem = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
    full, _ = block(x, mem, causal=True)
    caches = (KVCache(16), KVCache(16))
    steps = [block(x[:, i : i + 1], mem, causal=True, cache=caches)[0] for i in range(6)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert caches[1].length == 4  # the memory was projected once


def test_feed_forward_shapes_and_width() -> None:
    ff = FeedForward(8)
    assert ff.fc1.out_features == 32
    assert ff(torch.randn(2, 3, 8)).shape == (2, 3, 8)
    assert FeedForward(8, bias=False).fc1.bias is None
