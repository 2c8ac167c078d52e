"""Attention kernels for long sequences, registered beside ``sdpa`` and ``manual`` in :data:`archzoo.layers.attention.ATTENTION`."""

from __future__ import annotations
