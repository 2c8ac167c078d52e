r"""Maximum likelihood for normalizing flows: exact NLL in nats (points) or bits per dimension (images).

A flow gives :math:`\log p(x)` exactly (:mod:`archzoo.models.flow`), so the loss
is the negative log-likelihood itself. Images are discrete: each pixel is one
of :math:`K` = ``num_bins`` levels. Uniform dequantisation (Theis, van den Oord &
Bethge 2016, https://arxiv.org/abs/1511.01844) fits a density to
:math:`y = (k + u)/K`, :math:`u \sim U[0, 1)^D`, and

.. math::
    -\log P(k) \le \mathbb E_u\big[-\log p(y)\big] + D \log K, \qquad
    \text{bits/dim} = \frac{-\log p(y) + D\log K}{D \ln 2}.

For 2-D points the loss is the NLL in nats per point.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.models.flow import standard_normal_log_prob
from archzoo.registry import register_task
from archzoo.tasks.base import Picture
from archzoo.tasks.generative import GenerativeTask, eval_mode
from archzoo.utils import unwrap


class FlowTask(GenerativeTask):
    r"""Negative log-likelihood of a flow with ``forward(x) -> (z, log|det J|)``.

    Args:
        dequantize: add uniform noise to image pixels (default True).
        num_bins: pixel levels :math:`K` (default 256 for 8-bit images).
        sample_every: grid (images) or scatter (points) every this many epochs (default 5).
        num_samples: samples per grid (default 64; points use 2000).
        temperature: base-noise scale for sample grids (default 1.0).

    Metrics: images: ``loss`` = ``bpd`` (bits/dim), ``nll`` (nats per image, discrete);
    points: ``loss`` = ``nll`` (nats per point).
    """

    monitor = "val/loss"
    mode = "min"

    def __init__(
        self,
        dequantize: bool = True,
        num_bins: int = 256,
        sample_every: int = 5,
        num_samples: int = 64,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(sample_every, num_samples)
        if num_bins < 2:
            raise UserError(f"num_bins must be at least 2, got {num_bins}.")
        self.dequantize = dequantize
        self.num_bins = int(num_bins)
        self.temperature = float(temperature)
        self.eval_gen: dict[str, torch.Generator] = {}

    def _dequantize(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """:math:`y = (k + u) / K` with :math:`k = \\mathrm{round}(x (K - 1))`, :math:`u \\sim U[0, 1)`."""
        k = torch.round(x * (self.num_bins - 1))
        g_dev = generator.device if generator is not None else x.device
        u = torch.rand(x.shape, generator=generator, device=g_dev).to(x)
        return (k + u) / self.num_bins

    def nll(
        self, model: nn.Module, batch: Any, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample loss ``(B,)`` and metrics ``{name: (B,)}``."""
        x = batch[0]
        if x.dim() == 4:
            x = self.to_model_range(model, x)  # pixels in [0, 1]
            if self.dequantize:
                x = self._dequantize(x, generator)
        z, log_det = model(x)  # through the DDP wrapper when there is one
        nll = -(standard_normal_log_prob(z.float()) + log_det.float())  # -log p(x), nats
        if x.dim() != 4:
            return nll, {"nll": nll}
        d = x[0].numel()
        nll_discrete = nll + d * math.log(self.num_bins)  # nats per image on the K-level grid
        bpd = nll_discrete / (d * math.log(2))
        return bpd, {"bpd": bpd, "nll": nll_discrete}

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        per, metrics = self.nll(model, batch)
        return per.mean(), {k: v.mean().detach() for k, v in metrics.items()}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        gen = self.eval_gen.setdefault(split, self.generator(1))
        per, metrics = self.nll(model, batch, gen)
        self.acc(split).add(per.shape[0], loss=per, **metrics)

    def compute(self, split: str) -> dict[str, float]:
        self.eval_gen.pop(split, None)
        return super().compute(split)

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> list[Picture] | None:
        path = self.grid_path(epoch, run_dir)
        if path is None:
            return None
        m = unwrap(model)
        images = getattr(m, "data_range", None) is not None
        with eval_mode(m):
            n = self.num_samples if images else 2000
            samples = m.sample(n, generator=self.generator(), temperature=self.temperature)
        if images:
            return [Picture(path, "grid", samples, value_range=m.data_range)]
        return [Picture(path, "points", samples)]


@register_task("flow")
def flow(
    dequantize: bool = True, num_bins: int = 256, sample_every: int = 5, num_samples: int = 64, temperature: float = 1.0
) -> FlowTask:
    return FlowTask(dequantize, num_bins, sample_every, num_samples, temperature)
