"""Tests for archzoo.layers.embedding: the sinusoidal timestep embedding."""

from __future__ import annotations

import torch

from archzoo.layers.embedding import timestep_embedding


def test_timestep_embedding_formula() -> None:
    t = torch.tensor([0.0, 3.0])
    e = timestep_embedding(t, 6)  # h = 3, omega_i = 10000^(-i/3)
    assert e.shape == (2, 6)
    torch.testing.assert_close(e[0], torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]))
    w = torch.tensor([10000 ** (-i / 3) for i in range(3)])
    torch.testing.assert_close(e[1], torch.cat([torch.cos(3 * w), torch.sin(3 * w)]))
    assert timestep_embedding(t, 7).shape == (2, 7)
