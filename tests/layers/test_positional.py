"""Tests for archzoo.layers.positional: the sinusoid table, learned positions and RoPE."""

from __future__ import annotations

import math

import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers.positional import (
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    make_positions,
    sinusoid_table,
)


def test_sinusoid_table_follows_the_formula() -> None:
    table = sinusoid_table(50, 6)
    t, i = 7, 1
    assert table[t, 2 * i].item() == pytest.approx(math.sin(t / 10000 ** (2 * i / 6)), abs=1e-6)
    assert table[t, 2 * i + 1].item() == pytest.approx(math.cos(t / 10000 ** (2 * i / 6)), abs=1e-6)
    assert sinusoid_table(4, 5).shape == (4, 5)  # an odd width drops the last cosine


def test_additive_positions_offset_and_limit() -> None:
    for enc in (SinusoidalPositions(8, 10), LearnedPositions(8, 10)):
        x = torch.zeros(1, 4, 8)
        whole = enc(torch.zeros(1, 10, 8))
        torch.testing.assert_close(enc(x, offset=3), whole[:, 3:7])
        with pytest.raises(UserError, match="past the model's 10 positions"):
            enc(torch.zeros(1, 11, 8))
    assert "table" not in SinusoidalPositions(8, 10).state_dict()
    assert "weight" in LearnedPositions(8, 10).state_dict()


def test_rope_scores_depend_on_the_relative_position_only() -> None:
    rope = RotaryEmbedding(8, 64)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(m: int, n: int) -> float:
        return float((rope(q, offset=m) * rope(k, offset=n)).sum())

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)
    # A rotation keeps the norm, and position 0 is the identity.
    torch.testing.assert_close(rope(q, offset=9).norm(), q.norm())
    torch.testing.assert_close(rope(q, offset=0), q)


def test_rope_equals_the_complex_rotation_of_channel_pairs() -> None:
    d, t = 6, 5
    rope = RotaryEmbedding(d, 16)
    x = torch.randn(1, 2, t, d)
    # Pair channel i with channel i + d/2 as one complex number, rotate by t * base^(-2i/d).
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double())
    theta = torch.arange(t, dtype=torch.float64)[:, None] * 10000 ** (-torch.arange(0, d, 2).double() / d)
    r = z * torch.polar(torch.ones_like(theta), theta)
    expected = torch.cat([r.real, r.imag], -1).float()
    torch.testing.assert_close(rope(x), expected, atol=1e-5, rtol=1e-5)


def test_bad_positions_are_refused() -> None:
    with pytest.raises(UserError, match="even"):
        RotaryEmbedding(7, 10)
    with pytest.raises(UserError, match="model.args.positions"):
        make_positions("alibi", 8, 10)
    assert make_positions("rope", 8, 10) is None
