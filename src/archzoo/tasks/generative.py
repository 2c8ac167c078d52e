r"""What the generative tasks share: the pixel range a model works in, metric sums, sample grids.

:class:`GenerativeTask` is the base of the reconstruction, VAE, VQ-VAE,
adversarial, diffusion and flow tasks. It maps the dataset's normalised images
back to the pixel range a model works in, keeps metric sums that reduce over
ranks, and writes the sample grids every ``sample_every`` epochs to
``run_dir/samples/epoch_XXX.png``.

Image datasets store ``(x/255 - mean)/std`` and record ``mean``/``std`` in their
``info``; a generative model declares ``data_range`` (``(0, 1)`` for sigmoid
outputs, ``(-1, 1)`` for tanh). The task undoes the normalisation,
:math:`x_{01} = x\,\mathrm{std} + \mathrm{mean}`, and maps :math:`x_{01}` linearly
onto ``data_range``, so any normalisation the recipe picks gives the model the
pixels it expects. Non-image batches (2-D points) pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import TrainingDiverged, UserError
from archzoo.tasks.base import Task
from archzoo.tasks.sampling import ImageSampling
from archzoo.utils import sum_across_ranks, unwrap


class PixelRange:
    """Map dataset tensors to the range a model expects.

    Args:
        target: the model's ``data_range``; None passes batches through unchanged.
        mean: per-channel normalisation mean recorded by the dataset (None: data already in [0, 1]).
        std: per-channel normalisation std.
    """

    def __init__(
        self,
        target: Sequence[float] | None = (0.0, 1.0),
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
    ) -> None:
        self.target = None if target is None else (float(target[0]), float(target[1]))
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)

    @classmethod
    def from_info(cls, info: dict[str, Any], model: nn.Module) -> PixelRange:
        target = getattr(unwrap(model), "data_range", (0.0, 1.0))
        return cls(target, info.get("mean"), info.get("std"))

    def __call__(self, x: Tensor) -> Tensor:
        if self.target is None or x.dim() != 4 or not x.is_floating_point():
            return x
        if self.mean is not None and self.std is not None:
            x = x * self.std.to(x) + self.mean.to(x)  # undo (x01 - mean)/std
        x = x.clamp(0.0, 1.0)
        lo, hi = self.target
        if (lo, hi) == (0.0, 1.0):
            return x
        return lo + (hi - lo) * x


class Means:
    """Running sums of per-sample metrics; :meth:`result` averages them over all ranks."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0

    def add(self, n: int, **values: Tensor) -> None:
        """Add per-sample values ``(n,)`` or batch means (scalars, weighted by ``n``)."""
        for k, v in values.items():
            v = v.detach().float()
            s = v.sum() if v.dim() else v * n
            self.sums[k] = self.sums[k] + s if k in self.sums else s
        self.count += n

    def result(self) -> dict[str, float]:
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        vec = torch.stack([self.sums[k] for k in keys] + [self.sums[keys[0]].new_tensor(float(self.count))])
        sum_across_ranks(vec)
        vals = vec.tolist()
        n = max(vals[-1], 1.0)
        return {k: v / n for k, v in zip(keys, vals[:-1], strict=True)}


def check_finite(loss: Tensor, what: str) -> None:
    """Raise :class:`~archzoo.errors.TrainingDiverged` when ``loss`` is NaN or infinite."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise TrainingDiverged(f"The {what} loss became {float(loss.detach().float().mean())}, so training diverged.")


class GenerativeTask(ImageSampling, Task):
    """Base of the generative tasks: pixel range, metric sums, sample grids.

    Args:
        sample_every: write a grid every this many epochs (0 disables) (default 5).
        num_samples: images per grid (default 64).
        seed: seed of the fixed noise behind sample grids and evaluation (default 0).
    """

    #: archzoo export: a generative run's product is its samples, drawn by a procedure around the model.
    export_refusal = "its samples are drawn by a sampling procedure around the network (noise, several networks or many steps), not by one forward pass"

    def __init__(self, sample_every: int = 5, num_samples: int = 64, seed: int = 0) -> None:
        if sample_every < 0 or num_samples < 1:
            raise UserError("sample_every must be >= 0 and num_samples >= 1.")
        self.sample_every = int(sample_every)
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.pixels: PixelRange | None = None
        self.means: dict[str, Means] = {}
        self.fixed: Tensor | None = None  # a few validation inputs for the reconstruction grids

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        self.pixels = PixelRange.from_info(info, model)

    def to_model_range(self, model: nn.Module, x: Tensor) -> Tensor:
        if self.pixels is None:  # no setup(): assume the data is already in [0, 1]
            self.pixels = PixelRange(getattr(unwrap(model), "data_range", (0.0, 1.0)))
        return self.pixels(x)

    def acc(self, split: str) -> Means:
        return self.means.setdefault(split, Means())

    def compute(self, split: str) -> dict[str, float]:
        res = self.means.pop(split, Means()).result()
        return {f"{split}/{k}": v for k, v in res.items()}

    def keep_inputs(self, x: Tensor, n: int | None = None) -> None:
        """Remember up to ``n`` validation inputs (``self.fixed``) for the reconstruction grids.

        The first batch that offers more images than those kept replaces them: the engine's
        2-image fit probe before training must not become the grid.
        """
        n = self.num_samples if n is None else n
        if self.fixed is None or len(self.fixed) < min(n, len(x)):
            self.fixed = x[:n].detach().cpu()

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh CPU generator with the task's seed (the same noise every epoch)."""
        return torch.Generator().manual_seed(self.seed + offset)

    def grid_path(self, epoch: int, run_dir: Path | None, prefix: str = "epoch") -> Path | None:
        """``run_dir/samples/<prefix>_XXX.png`` (1-based epoch) when a grid is due, else None.

        The engine passes a 0-based ``epoch``; grids are written after epochs
        ``sample_every``, ``2 * sample_every``, ... (counting from 1).
        """
        if run_dir is None or self.sample_every <= 0 or (epoch + 1) % self.sample_every:
            return None
        return Path(run_dir) / "samples" / f"{prefix}_{epoch + 1:03d}.png"

    @staticmethod
    def grid_rows(model: nn.Module, n: int) -> int | None:
        """Columns per grid row: one per class for conditional models (so each column is a class)."""
        m = unwrap(model)
        k = int(getattr(m, "num_classes", 0) or 0)
        if getattr(m, "is_conditional", False) and 0 < k <= n:
            return k
        return None


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Switch ``module`` to eval mode inside a ``with`` block and restore its previous mode after."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)
