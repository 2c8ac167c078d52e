"""The task API: a task owns the objective, the engine owns the loop.

The engine calls, per training batch, ``task.training_step(model, batch, ctx)``.
The default implementation computes ``task.loss(model, batch)`` under the
context's autocast, and hands it to ``ctx.backward`` and ``ctx.step``. A task
with several optimizers (a GAN) overrides :meth:`Task.optimizers` to name them
and :meth:`Task.training_step` to call ``ctx.backward(loss, name)`` and
``ctx.step(name)`` in its own order; the loop does not change.

For evaluation the engine calls ``task.eval_step(model, batch, split)`` on every
batch of a split and then ``task.compute(split)``, which returns a dict of
floats keyed ``<split>/<metric>`` and resets the accumulators.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class StepContext(Protocol):
    """What the engine offers a task inside one training step."""

    global_step: int
    epoch: int
    device: torch.device

    def autocast(self) -> AbstractContextManager[Any]:
        """Mixed-precision context for forward passes (a no-op in fp32)."""

    def backward(self, loss: Tensor, name: str = "main") -> None:
        """Back-propagate ``loss`` for optimizer ``name``, scaled for accumulation and fp16."""

    def step(self, name: str = "main") -> bool:
        """Clip, step and zero optimizer ``name`` on an accumulation boundary; returns whether it stepped."""


class Task(ABC):
    """Base class of all tasks.

    Attributes:
        monitor: the metric that selects the best checkpoint and drives early stopping; None keeps
            the last weights (for objectives whose validation figures do not rank checkpoints).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
    """

    monitor: str | None = "val/loss"
    mode: str = "min"

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:  # noqa: B027 - an optional hook
        """Build metrics once the model, the data's ``info`` and the device are known."""

    def optimizers(self, model: nn.Module) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        """Name each optimizer, the module it trains and its option overrides (``{"lr": 2e-4}``)."""
        return {"main": (model, {})}

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Return the training loss and detached tensors to log (without split prefix)."""
        raise TypeError(f"{type(self).__name__} must define loss() or override training_step()")

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, Tensor]:
        with ctx.autocast():
            loss, logs = self.loss(model, batch)
        ctx.backward(loss)
        ctx.step()
        return {"loss": loss.detach(), **logs}

    @abstractmethod
    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        """Accumulate the metrics of ``split`` over one batch."""

    @abstractmethod
    def compute(self, split: str) -> dict[str, float]:
        """Return ``{f"{split}/{metric}": value}`` for the batches seen and reset."""

    def predict(self, model: nn.Module, x: Tensor) -> Tensor:
        """Map a batch of inputs to the task's output (class probabilities, values)."""
        return model(x)

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> None:  # noqa: B027 - an optional hook
        """Called on the main process after each epoch's evaluation (sample grids, plots)."""

    def extra_state(self) -> dict[str, Any]:
        """Task state that a checkpoint must carry (tensors, numbers, strings)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - an optional hook
        pass


def batch_size_of(batch: Any) -> int:
    """The number of samples in a batch (the first tensor's first dimension)."""
    for t in _tensors(batch):
        return int(t.shape[0])
    return 1


def _tensors(obj: Any) -> Iterator[Tensor]:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def to_device(obj: Any, device: torch.device, memory_format: torch.memory_format | None = None) -> Any:
    """Move every tensor in a (nested) batch to ``device``; 4-D float tensors may take ``memory_format``."""
    if isinstance(obj, Tensor):
        if obj.device != device:
            obj = obj.to(device, non_blocking=True)
        if memory_format is not None and obj.dim() == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=memory_format)
        return obj
    if isinstance(obj, tuple):
        return tuple(to_device(o, device, memory_format) for o in obj)
    if isinstance(obj, list):
        return [to_device(o, device, memory_format) for o in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device, memory_format) for k, v in obj.items()}
    if hasattr(obj, "to"):
        return obj.to(device)
    return obj
