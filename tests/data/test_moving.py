"""Moving Fashion-MNIST: positions bounce inside the frame, items are drawn where they are, splits are fixed."""

from __future__ import annotations

from pathlib import Path

import torch

from archzoo.data.moving import bounce, moving_fashion, render


def test_bounce_reflects_at_both_walls() -> None:
    p = bounce(torch.tensor([1.0]), torch.tensor([2.0]), 8, room=5)[0].tolist()
    assert p == [1, 3, 5, 3, 1, 1, 3, 5]  # 1, 3, 5, then back from the wall at 5 and again from 0 (at -1 → 1)
    q = bounce(torch.rand(100) * 10, torch.randn(100) * 3, 50, room=10)
    assert int(q.min()) >= 0 and int(q.max()) <= 10


def test_render_places_each_item_and_takes_the_maximum() -> None:
    items = torch.zeros(1, 2, 2, 2)
    items[0, 0] = 0.5
    items[0, 1] = 1.0
    rows = torch.tensor([[[0, 1], [1, 1]]])  # (N=1, K=2, T=2)
    cols = torch.tensor([[[0, 0], [1, 2]]])
    f = render(items, rows, cols, size=4)[0, :, 0]  # (T, 4, 4)
    assert float(f[0, 0, 0]) == 0.5 and float(f[0, 1, 1]) == 1.0 and float(f[0, 2, 2]) == 1.0
    assert float(f[0].sum()) == 0.5 * 3 + 1.0 * 4  # the overlap at (1, 1) keeps the larger value
    assert float(f[1, 1, 0]) == 0.5 and float(f[1, 1, 2]) == 1.0


def test_moving_fashion_shapes_and_fixed_data(data_root: Path) -> None:
    a = moving_fashion(str(data_root), n_train=20, n_val=5, n_test=5)
    b = moving_fashion(str(data_root), n_train=20, n_val=5, n_test=5)
    x, y = a.train.tensors
    assert x.shape == (20, 9, 1, 32, 32) and y.shape == (20, 1, 32, 32)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x, b.train.tensors[0])  # the same data everywhere
    # Items move: consecutive frames differ, and the target is not the last input frame.
    assert float((x[:, 1:] - x[:, :-1]).abs().sum()) > 0 and not torch.equal(x[:, -1], y)
