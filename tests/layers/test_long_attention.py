"""Tests for archzoo.layers.long_attention: chunked, Linformer, Performer and LSH kernels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.attention import KVCache, MultiHeadAttention, make_attention, manual_attention


def _qkv(b: int = 2, h: int = 2, t: int = 37, s: int | None = None, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = t if s is None else s
    return (
        torch.randn(b, h, t, d, generator=g),
        torch.randn(b, h, s, d, generator=g),
        torch.randn(b, h, s, d, generator=g),
    )


def _padding(b: int, s: int) -> torch.Tensor:
    lengths = torch.tensor([s, s - 9])[:b]
    return (torch.arange(s)[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, S)


# ----------------------------------------------------------------------------- chunked


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_chunked_equals_manual_attention(causal: bool, padded: bool) -> None:
    q, k, v = _qkv(t=37)
    mask = _padding(2, 37) if padded else None
    kernel = make_attention("chunked", 2, 8, chunk=8)  # 37 = 4 full blocks and a ragged one
    out, w = kernel(q, k, v, mask, causal, 0.0)
    ref, _ = manual_attention(q, k, v, mask, causal)
    assert w is None
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_chunked_with_a_cache_and_a_per_query_mask_equals_manual() -> None:
    q, k, v = _qkv(t=5, s=29)  # 5 new queries over 24 cached keys: bottom-right causal frame
    per_query = torch.rand(1, 1, 5, 29, generator=torch.Generator().manual_seed(1)) > 0.3
    per_query[..., -1] = True  # every query keeps its own key
    kernel = make_attention("chunked", 2, 8, chunk=4)
    for mask in (None, per_query):
        out, _ = kernel(q, k, v, mask, True, 0.0)
        ref, _ = manual_attention(q, k, v, mask, True)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal,padded", [(True, False), (False, True), (True, True)])
def test_chunked_gradients_equal_manual_gradients(causal: bool, padded: bool) -> None:
    q, k, v = (x.requires_grad_() for x in _qkv(t=20))
    mask = _padding(2, 20) if padded else None
    make_attention("chunked", 2, 8, chunk=6)(q, k, v, mask, causal, 0.0)[0].square().sum().backward()
    grads = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    manual_attention(q, k, v, mask, causal)[0].square().sum().backward()
    for g, x in zip(grads, (q, k, v), strict=True):
        torch.testing.assert_close(g, x.grad, atol=1e-5, rtol=1e-5)


def test_chunked_with_dropout_drops_weights_and_trains() -> None:
    q, k, v = (x.requires_grad_() for x in _qkv(t=20))
    kernel = make_attention("chunked", 2, 8, chunk=6)
    torch.manual_seed(0)
    out, _ = kernel(q, k, v, None, False, 0.5)
    out.sum().backward()
    assert not torch.allclose(out, manual_attention(q, k, v)[0], atol=1e-3)
    assert all(torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 for x in (q, k, v))


def test_chunked_decodes_through_multi_head_attention_with_a_cache() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, attention="chunked", attention_options={"chunk": 3}).eval()
    x = torch.randn(1, 7, 16)
    full, _ = mha(x, causal=True)
    cache = KVCache(7)
    steps = [mha(x[:, i : i + 1], causal=True, cache=cache)[0] for i in range(7)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- Linformer


def test_linformer_with_identity_projections_is_softmax_attention() -> None:
    q, k, v = _qkv(t=12)
    kernel = make_attention("linformer", 2, 8, max_len=12, proj_dim=12)
    with torch.no_grad():
        kernel.E.copy_(torch.eye(12))
        kernel.F.copy_(torch.eye(12))
    torch.testing.assert_close(kernel(q, k, v, None, False, 0.0)[0], manual_attention(q, k, v)[0], atol=1e-5, rtol=1e-5)


def test_linformer_ignores_padding_and_uses_the_first_columns() -> None:
    q, k, v = _qkv(t=10)
    kernel = make_attention("linformer", 2, 8, max_len=16, proj_dim=4)
    mask = _padding(2, 10)
    out, _ = kernel(q, k, v, mask, False, 0.0)  # sequence 1 holds one real key and 9 padding keys
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 1:], v2[1, :, 1:] = 50.0, -70.0
    torch.testing.assert_close(kernel(q, k2, v2, mask, False, 0.0)[0], out)  # padding keys change nothing
    # a length-10 sequence sees exactly what a max_len-10 Linformer with the first 10 columns sees
    cut = make_attention("linformer", 2, 8, max_len=10, proj_dim=4)
    with torch.no_grad():
        cut.E.copy_(kernel.E[:, :10])
        cut.F.copy_(kernel.F[:, :10])
    torch.testing.assert_close(cut(q, k, v, mask, False, 0.0)[0], out)


def test_linformer_refuses_causal_too_long_and_no_max_len() -> None:
    q, k, v = _qkv(t=10)
    with pytest.raises(UserError):
        make_attention("linformer", 2, 8)
    kernel = make_attention("linformer", 2, 8, max_len=8)
    with pytest.raises(UserError):
        kernel(q, k, v, None, False, 0.0)
    with pytest.raises(UserError):
        make_attention("linformer", 2, 8, max_len=16)(q, k, v, None, True, 0.0)


# ----------------------------------------------------------------------------- Performer


def test_performer_error_shrinks_as_features_grow() -> None:
    q, k, v = (x * 0.5 for x in _qkv(b=1, h=4, t=64, d=16, seed=3))
    ref, _ = manual_attention(q, k, v)
    errors = []
    for m in (8, 64, 1024):
        out, _ = make_attention("performer", 4, 16, features=m)(q, k, v, None, False, 0.0)
        errors.append((out - ref).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5 * errors[0]


def test_performer_features_are_orthogonal_seeded_and_not_in_the_state_dict() -> None:
    a, b = make_attention("performer", 2, 8, features=16), make_attention("performer", 2, 8, features=16)
    torch.testing.assert_close(a.omega, b.omega)
    block = F.normalize(a.omega[:8], dim=-1)
    torch.testing.assert_close(block @ block.T, torch.eye(8), atol=1e-5, rtol=0)
    assert "omega" not in a.state_dict()


def test_performer_padding_keys_change_nothing() -> None:
    q, k, v = _qkv(t=12)
    mask = _padding(2, 12)
    kernel = make_attention("performer", 2, 8, features=32)
    out, _ = kernel(q, k, v, mask, False, 0.0)
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 3:], v2[1, :, 3:] = 5.0, -7.0
    torch.testing.assert_close(kernel(q, k2, v2, mask, False, 0.0)[0][1], out[1])
    with pytest.raises(UserError):
        kernel(q, k, v, None, True, 0.0)


# ----------------------------------------------------------------------------- LSH


def _shared_qk_reference(q: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    kn = F.normalize(q, dim=-1)
    scores = q @ kn.transpose(-2, -1) / q.shape[-1] ** 0.5  # (B, h, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    eye = torch.eye(q.shape[-2], dtype=torch.bool)
    scores = scores.masked_fill(eye, -1e5)
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("padded", [False, True])
def test_lsh_with_one_bucket_and_one_chunk_is_shared_qk_attention(padded: bool) -> None:
    q, _, v = _qkv(t=16)
    mask = _padding(2, 16) if padded else None
    kernel = make_attention("lsh", 2, 8, n_buckets=1, chunk=16, n_rounds=3)
    out, _ = kernel(q, torch.zeros_like(q), v, mask, False, 0.0)
    torch.testing.assert_close(out, _shared_qk_reference(q, v, mask), atol=1e-5, rtol=1e-5)


def test_lsh_never_attends_padding_or_other_buckets_and_respects_causal() -> None:
    q, _, v = _qkv(t=40, d=8)
    mask = _padding(2, 40)
    kernel = make_attention("lsh", 2, 8, n_buckets=4, chunk=8, n_rounds=2)
    out, _ = kernel(q, q, v, mask, True, 0.0)
    v2 = v.clone()
    v2[1, :, 31:] = 1e3  # padding values of sequence 1 (length 31)
    out2, _ = kernel(q, q, v2, mask, True, 0.0)
    torch.testing.assert_close(out2[1, :, :31], out[1, :, :31])
    v3 = v.clone()
    v3[:, :, 20:] = -1e3  # the future changes nothing before position 20 under causal
    torch.testing.assert_close(kernel(q, q, v3, mask, True, 0.0)[0][:, :, :20], out[:, :, :20])
    assert torch.isfinite(out).all()


def test_lsh_is_close_to_full_attention_when_queries_cluster() -> None:
    # queries concentrated in a few directions: buckets catch almost all the softmax mass
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(4, 16, generator=g), dim=-1) * 40  # peaked softmax
    q = (centres[torch.randint(0, 4, (64,), generator=g)] + 0.05 * torch.randn(64, 16, generator=g))[None, None]
    v = torch.randn(1, 1, 64, 16, generator=g)
    ref = _shared_qk_reference(q, v, None)
    approx, _ = make_attention("lsh", 1, 16, n_buckets=8, chunk=32, n_rounds=4)(q, q, v, None, False, 0.0)
    chance = (v.mean(-2, keepdim=True) - ref).abs().mean()
    assert (approx - ref).abs().mean() < 0.1 * chance


# ----------------------------------------------------------------------------- through MultiHeadAttention


@pytest.mark.parametrize(
    "name,options",
    [
        ("chunked", {"chunk": 5}),
        ("linformer", {"proj_dim": 6}),
        ("performer", {"features": 16}),
        ("lsh", {"chunk": 4, "n_buckets": 4}),
    ],
)
def test_kernels_run_forward_and_backward_in_multi_head_attention(name: str, options: dict) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, attention=name, max_len=32, attention_options=options)
    x = torch.randn(2, 23, 16, requires_grad=True)
    key_mask = torch.arange(23)[None, :] < torch.tensor([23, 15])[:, None]
    out, w = mha(x, key_mask=key_mask)
    assert out.shape == (2, 23, 16) and w is None and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert mha.qkv.weight.grad is not None and mha.out.weight.grad.abs().sum() > 0
    if not mha.kernel.exact:
        with pytest.raises(UserError):
            mha(x, need_weights=True)
        with pytest.raises(UserError):
            mha(x, cache=KVCache(32))


def test_unknown_long_options_are_refused() -> None:
    with pytest.raises(UserError):
        make_attention("chunked", 2, 8, features=4)
    with pytest.raises(UserError):
        make_attention("lsh", 2, 8, n_buckets=3)
