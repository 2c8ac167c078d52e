"""Tests for archzoo.tasks.generative: pixel ranges, metric sums, grid schedule, the divergence check."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.errors import TrainingDiverged, UserError
from archzoo.tasks.generative import GenerativeTask, Means, PixelRange, check_finite, eval_mode


def test_pixel_range_undoes_normalisation() -> None:
    x01 = torch.rand(2, 1, 3, 3)
    normed = (x01 - 0.3) / 0.4
    torch.testing.assert_close(PixelRange((0.0, 1.0), [0.3], [0.4])(normed), x01)
    torch.testing.assert_close(PixelRange((-1.0, 1.0), [0.3], [0.4])(normed), 2 * x01 - 1)
    torch.testing.assert_close(PixelRange((-1.0, 1.0))(x01), 2 * x01 - 1)  # no info: data in [0, 1]
    pts = torch.randn(5, 2)
    assert PixelRange((0.0, 1.0), [0.3], [0.4])(pts) is pts  # non-image batches pass through
    assert PixelRange(None, [0.3], [0.4])(normed) is normed  # unbounded models see the data as is


def test_means_weights_batch_means_and_per_sample_values() -> None:
    m = Means()
    m.add(2, loss=torch.tensor([1.0, 3.0]))  # per-sample values
    m.add(4, loss=torch.tensor(5.0))  # a batch mean over 4 samples
    assert m.result() == {"loss": pytest.approx((1 + 3 + 4 * 5) / 6)}
    assert Means().result() == {}


class _Gen(GenerativeTask):
    def eval_step(self, model: nn.Module, batch: object, split: str) -> None:
        raise NotImplementedError


def test_grid_path_every_sample_every_epochs(tmp_path: Path) -> None:
    task = _Gen(sample_every=2)
    assert task.grid_path(0, tmp_path) is None  # after epoch 1
    assert task.grid_path(1, tmp_path) == tmp_path / "samples" / "epoch_002.png"
    assert task.grid_path(1, None) is None
    assert _Gen(sample_every=0).grid_path(1, tmp_path) is None
    with pytest.raises(UserError):
        _Gen(num_samples=0)


def test_keep_inputs_prefers_the_larger_batch() -> None:
    task = _Gen(num_samples=4)
    task.keep_inputs(torch.zeros(2, 1, 2, 2))  # the engine's 2-image probe
    task.keep_inputs(torch.ones(8, 1, 2, 2))
    assert task.fixed is not None and task.fixed.shape[0] == 4 and bool((task.fixed == 1).all())


def test_check_finite_and_eval_mode() -> None:
    check_finite(torch.tensor(1.0), "test")
    with pytest.raises(TrainingDiverged, match="diverged"):
        check_finite(torch.tensor(float("nan")), "test")
    m = nn.Linear(2, 2).train()
    with eval_mode(m):
        assert not m.training
    assert m.training
