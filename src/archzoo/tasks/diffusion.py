r"""The DDPM objective: predict the noise added at a uniformly drawn step.

Ho, Jain & Abbeel (2020), https://arxiv.org/abs/2006.11239, eq. 14 ("simple" loss):

.. math::
    \mathcal L = \mathbb E_{x_0, t \sim U\{1..T\}, \epsilon \sim \mathcal N(0, I)}
    \big\lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon,\ t,\ y)\big\rVert^2,

averaged over pixels. For classifier-free guidance (Ho & Salimans 2022,
https://arxiv.org/abs/2207.12598) a conditional model sees the null class
instead of :math:`y` with probability ``p_uncond``, so one network learns both
:math:`\epsilon_\theta(x_t, y)` and :math:`\epsilon_\theta(x_t, \varnothing)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import Picture
from archzoo.tasks.generative import GenerativeTask, eval_mode
from archzoo.utils import randn, unwrap


class DDPMTask(GenerativeTask):
    r"""Noise-prediction MSE with uniform timesteps and label dropout.

    Validation and test use the same loss with noise and timesteps from a fixed
    seed, so the numbers are comparable across epochs. Grids are drawn with DDIM
    in ``sample_steps`` steps (cheap) and guidance weight ``guidance``.

    Args:
        p_uncond: probability of replacing a label by the null class in training (default 0.1).
        sample_every: sample grid every this many epochs (default 5).
        num_samples: samples per grid (default 64).
        sample_steps: DDIM steps for grids (default 50).
        guidance: classifier-free guidance weight :math:`w` for grids of conditional models (default 1.0).

    Metrics: ``loss``.
    """

    export_refusal = "its samples come from a loop of denoising steps over the network, not from one forward pass"

    monitor = "val/loss"
    mode = "min"

    def __init__(
        self,
        p_uncond: float = 0.1,
        sample_every: int = 5,
        num_samples: int = 64,
        sample_steps: int = 50,
        guidance: float = 1.0,
    ) -> None:
        super().__init__(sample_every, num_samples)
        if not 0.0 <= p_uncond <= 1.0:
            raise UserError(f"p_uncond must be in [0, 1], got {p_uncond}.")
        self.p_uncond = float(p_uncond)
        self.sample_steps = int(sample_steps)
        self.guidance = float(guidance)
        self.eval_gen: dict[str, torch.Generator] = {}

    def _labels(self, m: nn.Module, batch: Any) -> Tensor | None:
        if not getattr(m, "is_conditional", False):
            return None
        if len(batch) < 2:
            raise UserError("A class-conditional diffusion model needs labelled batches (x, y).")
        return batch[1]

    def _loss(self, model: nn.Module, x0: Tensor, labels: Tensor | None, generator: torch.Generator | None) -> Tensor:
        m = unwrap(model)
        b = x0.shape[0]
        g_dev = generator.device if generator is not None else x0.device
        t = torch.randint(0, m.timesteps, (b,), generator=generator, device=g_dev).to(x0.device)  # t ~ U{0..T-1}
        noise = randn(x0.shape, generator, x0.device).to(x0.dtype)  # eps ~ N(0, I)
        x_t = m.q_sample(x0, t, noise)  # sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
        pred = model(x_t, t, labels)  # through the DDP wrapper when there is one
        return F.mse_loss(pred.float(), noise.float())

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        m = unwrap(model)
        x0 = self.to_model_range(m, batch[0])
        labels = self._labels(m, batch)
        if labels is not None and self.p_uncond > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.p_uncond
            labels = torch.where(drop, torch.full_like(labels, m.num_classes), labels)  # null class
        return self._loss(model, x0, labels, None), {}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        m = unwrap(model)
        x0 = self.to_model_range(m, batch[0])
        gen = self.eval_gen.setdefault(split, self.generator(1))
        loss = self._loss(model, x0, self._labels(m, batch), gen)
        self.acc(split).add(x0.shape[0], loss=loss)

    def compute(self, split: str) -> dict[str, float]:
        self.eval_gen.pop(split, None)
        return super().compute(split)

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> list[Picture] | None:
        path = self.grid_path(epoch, run_dir)
        if path is None:
            return None
        m = unwrap(model)
        with eval_mode(m):
            imgs = m.sample(
                self.num_samples,
                steps=min(self.sample_steps, m.timesteps),
                guidance=self.guidance,
                method="ddim",
                generator=self.generator(),
            )
        return [Picture(path, "grid", imgs, nrow=self.grid_rows(m, self.num_samples), value_range=m.data_range)]


@register_task("ddpm")
def ddpm(
    p_uncond: float = 0.1, sample_every: int = 5, num_samples: int = 64, sample_steps: int = 50, guidance: float = 1.0
) -> DDPMTask:
    return DDPMTask(p_uncond, sample_every, num_samples, sample_steps, guidance)
