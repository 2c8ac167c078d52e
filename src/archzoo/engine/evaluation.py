"""The evaluation pass, shared by the Trainer and by a finished :class:`~archzoo.engine.run.Run`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from archzoo.data.splits import Split
from archzoo.tasks.base import Task, to_device


@torch.no_grad()
def evaluate_split(
    model: nn.Module,
    task: Task,
    data: Split,
    split: str,
    batch_size: int,
    device: torch.device,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    memory_format: torch.memory_format | None = None,
    rank: int = 0,
    world: int = 1,
) -> dict[str, float]:
    """Run ``task.eval_step`` over this rank's batches of ``data`` and return ``task.compute(split)``.

    Each rank sees its own share of the examples; the task's metrics (torchmetrics, or the
    the one helper, :func:`archzoo.utils.sum_across_ranks`) are reduced across ranks at compute.
    """
    was = model.training
    model.eval()
    try:
        for batch in data.batches(batch_size, rank=rank, world=world):
            batch = to_device(batch, device, memory_format)
            with autocast():
                task.eval_step(model, batch, split)
        return task.compute(split)
    finally:
        model.train(was)
