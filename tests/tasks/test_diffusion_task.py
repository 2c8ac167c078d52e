"""Tests for archzoo.tasks.diffusion: the epsilon-prediction loss, label dropout, evaluation, grids."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from archzoo.engine.context import OptimizerSlot, TrainContext
from archzoo.models.diffusion import GaussianDiffusion
from archzoo.models.unet import UNet
from archzoo.registry import create_task
from archzoo.tasks.diffusion import DDPMTask
from archzoo.viz.sampling import draw_outputs


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def _model(num_classes: int = 0) -> GaussianDiffusion:
    torch.manual_seed(0)
    unet = UNet(1, 4, base_channels=8, channel_mults=(1,), num_res_blocks=1, dropout=0.0, num_classes=num_classes)
    return GaussianDiffusion(unet, (1, 4, 4), timesteps=20)


class _Spy(nn.Module):
    """Wraps a denoiser and records the labels it is given."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.num_classes = inner.num_classes
        self.seen: list[torch.Tensor | None] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(labels)
        return self.inner(x, t, labels)


def test_loss_at_init_is_the_noise_variance() -> None:
    m = _model().eval()  # the U-Net's output conv starts at zero, so the loss is E[eps^2] = 1
    task = DDPMTask()
    x = torch.rand(512, 1, 4, 4)
    with torch.no_grad():
        task.eval_step(m, (x,), "val")
    assert abs(task.compute("val")["val/loss"] - 1.0) < 0.06  # 8192 squares: std 0.016


def test_training_step_updates_the_denoiser() -> None:
    m = _model(num_classes=3)
    task = create_task("ddpm")
    task.setup(m, {"mean": [0.5], "std": [0.5]}, torch.device("cpu"))
    ctx = TrainContext({"main": OptimizerSlot(torch.optim.Adam(m.parameters(), lr=1e-3), m)}, torch.device("cpu"))
    w0 = m.model.out[-1].weight.detach().clone()
    logs = task.training_step(m, (torch.randn(8, 1, 4, 4), torch.arange(8) % 3), ctx)
    assert torch.isfinite(logs["loss"]) and not torch.equal(w0, m.model.out[-1].weight)


def test_label_dropout_uses_the_null_class() -> None:
    m = _model(num_classes=3)
    spy = _Spy(m.model)
    m.model = spy
    x, y = torch.rand(16, 1, 4, 4), torch.arange(16) % 3
    DDPMTask(p_uncond=1.0).loss(m, (x, y))
    assert spy.seen[-1].tolist() == [3] * 16
    DDPMTask(p_uncond=0.0).loss(m, (x, y))
    assert torch.equal(spy.seen[-1], y)


def test_eval_is_reproducible_and_grid_is_written(tmp_path: Path) -> None:
    m = _model(num_classes=3).eval()
    task = DDPMTask(sample_every=1, num_samples=6, sample_steps=3)
    batches = [(torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])) for _ in range(2)]
    vals = []
    for _ in range(2):
        with torch.no_grad():
            for b in batches:
                task.eval_step(m, b, "val")
        vals.append(task.compute("val"))
    assert set(vals[0]) == {"val/loss"} and vals[0] == vals[1]  # fixed timesteps and noise
    draw_outputs(task.on_epoch_end(m, 0, tmp_path) or [])
    assert _png_size(tmp_path / "samples" / "epoch_001.png") == (3 * 6 + 2, 2 * 6 + 2)  # a column per class
