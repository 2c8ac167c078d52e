"""Tests for archzoo.tasks.adversarial: gradient penalty, both optimizer steps with a real TrainContext,
n_critic scheduling, divergence, evaluation metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from archzoo.engine.context import OptimizerSlot, TrainContext
from archzoo.errors import TrainingDiverged
from archzoo.models.gan import DCGAN, MLPGAN
from archzoo.registry import create_task
from archzoo.tasks.adversarial import GANTask, WGANGPTask, gradient_penalty, mmd2
from archzoo.viz.sampling import draw_outputs


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def _context(task: GANTask, model: torch.nn.Module) -> TrainContext:
    """Optimizers and slots built the way the engine builds them from ``task.optimizers``."""
    slots = {}
    for name, (module, overrides) in task.optimizers(model).items():
        o = dict(overrides)
        assert o.pop("name") == "adam"
        slots[name] = OptimizerSlot(torch.optim.Adam(module.parameters(), lr=o["lr"], betas=o["betas"]), module)
    return TrainContext(slots, torch.device("cpu"))


def _flat(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()]).clone()


def _gan(conditional: bool = False) -> MLPGAN:
    torch.manual_seed(0)
    return MLPGAN(1, 8, latent_dim=4, g_hidden=(16,), d_hidden=(16,), num_classes=3 if conditional else 0)


def _batch(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.rand(n, 1, 8, 8), torch.arange(n) % 3


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic() -> None:
    w = torch.randn(16)
    real, fake = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    unit = lambda x: x.flatten(1) @ (w / w.norm())  # noqa: E731 - 1-Lipschitz, gradient norm exactly 1
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-6)
    double = lambda x: x.flatten(1) @ (2 * w / w.norm())  # noqa: E731 - gradient norm 2
    assert gradient_penalty(double, real, fake).item() == pytest.approx(1.0, abs=1e-5)


def test_optimizers_name_both_networks_with_the_task_defaults() -> None:
    m = _gan()
    opts = GANTask().optimizers(m)
    assert list(opts) == ["generator", "discriminator"]
    assert opts["generator"][0] is m.generator and opts["discriminator"][0] is m.discriminator
    assert opts["generator"][1] == {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}
    assert WGANGPTask().optimizers(m)["discriminator"][1]["betas"] == (0.0, 0.9)


def test_wgan_generator_schedule_is_sized_by_its_own_steps() -> None:
    task = WGANGPTask(n_critic=5)
    assert task.optimizer_steps("discriminator", 100) == 100
    assert task.optimizer_steps("generator", 100) == 20


@pytest.mark.parametrize("conditional", [False, True])
def test_gan_training_step_steps_both_networks(conditional: bool) -> None:
    m = _gan(conditional)
    task = GANTask(label_smoothing=0.1)
    ctx = _context(task, m)
    g0, d0 = _flat(m.generator), _flat(m.discriminator)
    logs = task.training_step(m, _batch(), ctx)
    assert set(logs) == {"loss", "loss_d", "loss_g", "d_real", "d_fake"}
    assert not torch.equal(g0, _flat(m.generator)) and not torch.equal(d0, _flat(m.discriminator))
    assert all(p.grad is None for p in m.parameters())  # both zeroed; no stale D gradient from the G loss
    assert all(p.requires_grad for p in m.discriminator.parameters())


def test_discriminator_loss_with_one_sided_label_smoothing() -> None:
    d_real, d_fake = torch.tensor([0.3, -1.0]), torch.tensor([2.0, 0.1])
    expected = F.binary_cross_entropy_with_logits(d_real, torch.full((2,), 0.9)) + F.binary_cross_entropy_with_logits(
        d_fake, torch.zeros(2)
    )
    torch.testing.assert_close(GANTask(label_smoothing=0.1).d_loss(d_real, d_fake), expected)


def test_feature_matching_generator_loss() -> None:
    m = _gan()
    x, _ = _batch()
    task = GANTask(feature_matching=True)
    m.eval()  # no dropout: identical batches give identical features
    assert task.g_loss(m.discriminator, x, x.clone(), None).item() == pytest.approx(0.0, abs=1e-10)
    m.train()
    ctx = _context(task, m)
    g0 = _flat(m.generator)
    task.training_step(m, _batch(), ctx)
    assert not torch.equal(g0, _flat(m.generator))


def test_wgan_gp_steps_the_generator_once_every_n_critic_calls() -> None:
    torch.manual_seed(0)
    m = DCGAN(1, 8, latent_dim=4, base_channels=4, d_norm="layer")
    task = WGANGPTask(n_critic=5)
    ctx = _context(task, m)
    gen_changed = []
    for _ in range(10):
        g0, d0 = _flat(m.generator), _flat(m.discriminator)
        logs = task.training_step(m, _batch(), ctx)
        assert not torch.equal(d0, _flat(m.discriminator))  # the critic steps every call
        gen_changed.append(not torch.equal(g0, _flat(m.generator)))
    assert gen_changed == [False] * 4 + [True] + [False] * 4 + [True]
    assert {"gp", "wdist"} <= set(logs)
    assert task.extra_state() == {"critic_steps": 10}
    resumed = WGANGPTask(n_critic=5)
    resumed.load_extra_state({"critic_steps": 9})
    assert resumed.critic_steps % resumed.n_critic == resumed.n_critic - 1  # the next call is a generator turn


@pytest.mark.parametrize("cls", [GANTask, WGANGPTask])
def test_nan_loss_raises_training_diverged(cls: type) -> None:
    m = _gan()
    task = cls()
    x, y = _batch()
    x[0, 0, 0, 0] = float("nan")
    d0 = _flat(m.discriminator)
    with pytest.raises(TrainingDiverged, match="diverged"):
        task.training_step(m, (x, y), _context(task, m))
    assert torch.equal(d0, _flat(m.discriminator))  # no step was taken


def test_mmd_separates_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(200, 16, generator=g), torch.rand(200, 16, generator=g)
    assert abs(mmd2(a, b).item()) < 0.01
    assert mmd2(a, b + 0.5).item() > 0.1


@pytest.mark.parametrize("name", ["gan", "wgan_gp"])
def test_eval_metrics_are_reproducible(name: str, tmp_path: Path) -> None:
    m = _gan(conditional=True).eval()
    task = create_task(name, num_samples=6)
    task.setup(m, {"mean": [0.0], "std": [1.0]}, torch.device("cpu"))
    runs = []
    for _ in range(2):
        with torch.no_grad():
            task.eval_step(m, _batch(), "val")
        runs.append(task.compute("val"))
    assert runs[0] == runs[1] and "val/mmd" in runs[0] and "val/d_real" in runs[0]
    assert task.monitor is None  # GAN runs keep their last weights
    draw_outputs(task.on_epoch_end(m, 0, tmp_path) or [])
    assert _png_size(tmp_path / "samples" / "epoch_001.png") == (3 * 10 + 2, 2 * 10 + 2)  # one column per class


def test_precision_auto_measures_a_two_optimizer_task() -> None:
    """precision=auto times the task's own training_step, so a GAN's two steps are measured (it used to give up)."""
    from archzoo.engine.trainer import probe_bf16_faster

    calls: list[str] = []

    class Counting(GANTask):
        def training_step(self, model, batch, ctx):  # type: ignore[no-untyped-def]
            calls.append(ctx.precision)
            return super().training_step(model, batch, ctx)

    m = _gan()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.rand(8, 1, 8, 8) * 2 - 1
    assert probe_bf16_faster(m, Counting(), (x, torch.zeros(8, dtype=torch.long)), torch.device("cpu"), steps=1) in (
        True,
        False,
    )
    assert calls.count("fp32") == 2 and calls.count("bf16") == 2
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # the probe trained copies
