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
