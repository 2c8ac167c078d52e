"""Tests for archzoo.tasks.flow and the two_moons dataset: NLL in nats, bits/dim, dequantisation, training."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from archzoo.engine.context import OptimizerSlot, TrainContext
from archzoo.models.flow import RealNVP2D, RealNVPImage
from archzoo.registry import create_dataset, create_task
from archzoo.tasks.flow import FlowTask
from archzoo.viz.sampling import draw_outputs


def test_two_moons_dataset() -> None:
    b = create_dataset("two_moons", n_samples=1000, seed=3)
    assert (len(b.train), len(b.val), len(b.test)) == (800, 100, 100)
    x, y = b.train.tensors
    assert x.shape == (800, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert b.info["kind"] == "points" and b.info["in_features"] == 2
    assert set(y.tolist()) == {0, 1}
    again = create_dataset("two_moons", n_samples=1000, seed=3)
    assert torch.equal(again.test.tensors[0], b.test.tensors[0])


def test_points_loss_is_the_negative_log_prob() -> None:
    torch.manual_seed(0)
    m = RealNVP2D(num_layers=2, hidden=8)
    x = torch.randn(10, 2)
    loss, logs = FlowTask().loss(m, (x, torch.zeros(10)))
    torch.testing.assert_close(loss, -m.log_prob(x).mean())
    assert set(logs) == {"nll"}


def test_dequantisation_stays_in_each_pixels_bin() -> None:
    task = FlowTask(num_bins=4)
    x = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]).reshape(1, 1, 2, 2).repeat(100, 1, 1, 1)
    y = task._dequantize(x, torch.Generator().manual_seed(0))
    k = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 2, 2)
    assert ((y >= k / 4) & (y < (k + 1) / 4)).all()


def test_bits_per_dim_formula() -> None:
    torch.manual_seed(0)
    m = RealNVPImage(1, 4, num_scales=2, hidden=4, num_blocks=1)
    task = FlowTask()
    x = torch.rand(3, 1, 4, 4)
    per, metrics = task.nll(m, (x,), torch.Generator().manual_seed(0))
    y = task._dequantize(x, torch.Generator().manual_seed(0))
    nll = -m.log_prob(y) + 16 * math.log(256)
    torch.testing.assert_close(metrics["nll"], nll, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(per, nll / (16 * math.log(2)), atol=1e-4, rtol=1e-5)


def test_training_lowers_the_nll_on_two_moons(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = create_dataset("two_moons", n_samples=2000)
    m = RealNVP2D(num_layers=4, hidden=32)
    task = create_task("flow", sample_every=1)
    task.setup(m, data.info, torch.device("cpu"))
    ctx = TrainContext({"main": OptimizerSlot(torch.optim.Adam(m.parameters(), lr=5e-3), m)}, torch.device("cpu"))

    def val() -> float:
        with torch.no_grad():
            for batch in data.val.batches(500):
                task.eval_step(m, batch, "val")
        return task.compute("val")["val/loss"]

    start = val()
    for epoch in range(3):
        for batch in data.train.batches(128, shuffle=True, epoch=epoch):
            task.training_step(m, batch, ctx)
    assert val() < start - 0.3
    draw_outputs(task.on_epoch_end(m, 0, tmp_path) or [])
    assert (tmp_path / "samples" / "epoch_001.png").stat().st_size > 0
