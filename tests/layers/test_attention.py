"""Tests for archzoo.layers.attention: 2-D self-attention against a hand-written softmax attention."""

from __future__ import annotations

import math

import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers.attention import SelfAttention2d


def test_self_attention_matches_manual_softmax_attention() -> None:
    torch.manual_seed(0)
    a = SelfAttention2d(8, heads=2, groups=4)
    torch.nn.init.normal_(a.proj.weight)
    x = torch.randn(2, 8, 3, 3)
    qkv = a.qkv(a.norm(x)).reshape(2, 3, 2, 4, 9)  # (B, 3, heads, hd, HW)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # (B, heads, hd, HW)
    w = torch.softmax(q.transpose(2, 3) @ k / math.sqrt(4), dim=-1)  # (B, heads, HW, HW)
    out = (w @ v.transpose(2, 3)).transpose(2, 3).reshape(2, 8, 3, 3)
    torch.testing.assert_close(a(x), x + a.proj(out), atol=1e-5, rtol=1e-5)


def test_self_attention_starts_as_the_identity_and_checks_heads() -> None:
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(SelfAttention2d(8, heads=2)(x), x)
    with pytest.raises(UserError):
        SelfAttention2d(6, heads=4)


# ----------------------------------------------------------------------------- sequence attention

from archzoo.layers.attention import (  # noqa: E402
    KVCache,
    MultiHeadAttention,
    causal_mask,
    make_attention,
    manual_attention,
)


def _qkv(b: int = 2, h: int = 3, t: int = 5, s: int = 7, d: int = 8) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(b, h, n, d, generator=g) for n in (t, s, s))


@pytest.mark.parametrize("masked", ["none", "padding", "causal", "both", "causal_square"])
def test_written_out_attention_equals_sdpa_with_and_without_each_mask(masked: str) -> None:
    q, k, v = _qkv()
    if masked == "causal_square":
        k, v = k[:, :, :5], v[:, :, :5]
    s = k.shape[2]
    pad = torch.ones(2, s, dtype=torch.bool)
    pad[0, -2:] = False  # the first example's last two keys are padding
    mask = pad[:, None, None, :] if masked in ("padding", "both") else None
    causal = masked in ("causal", "both", "causal_square")
    manual = make_attention("manual", 3, 8)
    sdpa = make_attention("sdpa", 3, 8)
    out_m, w = manual(q, k, v, mask, causal, 0.0)
    out_s, none = sdpa(q, k, v, mask, causal, 0.0)
    assert none is None
    torch.testing.assert_close(out_m, out_s, atol=1e-5, rtol=1e-5)
    # The weights are a distribution over the allowed keys, zero elsewhere.
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))
    allowed = torch.ones(2, 1, 5, s, dtype=torch.bool)
    if mask is not None:
        allowed = allowed & mask
    if causal:
        allowed = allowed & causal_mask(5, s)
    assert (w[~allowed.expand_as(w)] == 0).all()
    assert (w[allowed.expand_as(w)] > 0).all()


def test_causal_mask_aligns_queries_with_the_last_positions() -> None:
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert torch.equal(causal_mask(3, 3), torch.ones(3, 3, dtype=torch.bool).tril())


def test_manual_attention_is_the_softmax_formula() -> None:
    q, k, v = _qkv(1, 1, 2, 3, 4)
    out, w = manual_attention(q, k, v)
    expected_w = torch.softmax(q[0, 0] @ k[0, 0].T / 2.0, -1)
    torch.testing.assert_close(w[0, 0], expected_w)
    torch.testing.assert_close(out[0, 0], expected_w @ v[0, 0])


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_multihead_attention_equals_torch_multihead_attention(attention: str) -> None:
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4, attention=attention).eval()
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    x = torch.randn(2, 6, 16)
    pad = torch.ones(2, 6, dtype=torch.bool)
    pad[1, 4:] = False
    out, w = ours(x, key_mask=pad, causal=True, need_weights=True)
    ref_out, ref_w = ref(
        x, x, x, key_padding_mask=~pad, attn_mask=~causal_mask(6, 6), need_weights=True, average_attn_weights=False
    )
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=1e-5)
    # Without weights, the chosen kernel runs and gives the same output.
    out2, none = ours(x, key_mask=pad, causal=True)
    assert none is None
    torch.testing.assert_close(out2, ref_out, atol=1e-5, rtol=1e-5)


def test_cross_attention_matches_torch_with_separate_memory() -> None:
    torch.manual_seed(1)
    ours = MultiHeadAttention(8, 2, cross=True).eval()
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    x, mem = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    pad = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    out, _ = ours(x, mem, key_mask=pad)
    ref_out, _ = ref(x, mem, mem, key_padding_mask=~pad)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention", ["sdpa", "manual"])
def test_a_kv_cache_step_by_step_equals_the_causal_pass(attention: str) -> None:
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 4, attention=attention).eval()
    x = torch.randn(2, 7, 16)
    full, _ = mha(x, causal=True)
    cache = KVCache(capacity=10)
    assert cache.k is None  # allocated lazily
    first, _ = mha(x[:, :3], causal=True, cache=cache)  # a prompt of three, then one token at a time
    steps = [first] + [mha(x[:, i : i + 1], causal=True, cache=cache)[0] for i in range(3, 7)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 7 and cache.k is not None and cache.k.shape == (2, 4, 10, 4)
    assert not any("cache" in name for name in mha.state_dict())


def test_a_full_cache_is_a_clear_error() -> None:
    mha = MultiHeadAttention(8, 2).eval()
    cache = KVCache(capacity=2)
    mha(torch.randn(1, 2, 8), causal=True, cache=cache)
    with pytest.raises(UserError, match="past the model's 2"):
        mha(torch.randn(1, 1, 8), causal=True, cache=cache)


def test_cache_reorder_keeps_the_chosen_rows() -> None:
    cache = KVCache(4)
    k = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 2, 1)
    cache.append(k, k)
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache.k is not None
    assert cache.k[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0]


def test_unknown_attention_and_bad_heads_are_refused() -> None:
    with pytest.raises(UserError, match="model.args.attention"):
        MultiHeadAttention(8, 2, attention="quantum")
    with pytest.raises(UserError, match="divide"):
        MultiHeadAttention(10, 4)
