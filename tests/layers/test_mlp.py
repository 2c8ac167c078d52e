"""Tests for archzoo.layers.mlp."""

from __future__ import annotations

from archzoo.layers.mlp import mlp


def test_mlp_puts_activations_between_layers() -> None:
    assert [type(m).__name__ for m in mlp([3, 5, 2])] == ["Linear", "ReLU", "Linear"]
    assert [type(m).__name__ for m in mlp([3, 5, 2], act="tanh", last_act=True)] == ["Linear", "Tanh", "Linear", "Tanh"]
