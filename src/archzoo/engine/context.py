"""The step context the engine hands to a task: backward, step, autocast.

It hides gradient accumulation, gradient clipping, fp16 loss scaling, L1/L2
penalties and learning-rate scheduling from the task, so a task with one
optimizer and a GAN task with two use the same loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class OptimizerSlot:
    """One named optimizer with what it trains, its scheduler and its scaler."""

    optimizer: torch.optim.Optimizer
    module: nn.Module
    scheduler: Any = None
    scheduler_interval: str = "step"  # "step", "epoch" or "plateau"
    scaler: torch.amp.GradScaler | None = None
    penalised: list[Tensor] = field(default_factory=list)  # weights under L1/L2 penalties


def average_gradients(opt: torch.optim.Optimizer) -> None:
    """Average the gradients of ``opt``'s parameters over the ranks, in one flat all-reduce.

    Used for optimizers whose module is not run through a DDP wrapper (a GAN calls its
    generator and discriminator directly, several forwards per backward).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class TrainContext:
    """What a task sees during one training step.

    Args:
        slots: the named optimizers.
        device: where the model lives.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        grad_accum: number of micro-batches per optimizer step.
        grad_clip: maximum global gradient norm (0 disables clipping).
        l1: weight of the :math:`\\ell_1` penalty :math:`\\lambda_1 \\sum |w|` on weights.
        l2: weight of the :math:`\\ell_2` penalty :math:`\\tfrac{\\lambda_2}{2} \\sum w^2`
            added to the loss (coupled, unlike decoupled weight decay).
    """

    def __init__(
        self,
        slots: dict[str, OptimizerSlot],
        device: torch.device,
        precision: str = "fp32",
        grad_accum: int = 1,
        grad_clip: float = 0.0,
        l1: float = 0.0,
        l2: float = 0.0,
    ) -> None:
        self.slots = slots
        self.device = device
        self.precision = precision
        self.grad_accum = max(1, int(grad_accum))
        self.grad_clip = float(grad_clip)
        self.l1 = float(l1)
        self.l2 = float(l2)
        self.global_step = 0  # optimizer steps of "main" (or the first slot) so far
        self.micro_step = 0  # micro-batches seen so far
        self.epoch = 0
        self.grad_norm: Tensor | None = None
        # Set by the engine under DDP when no wrapper reduces the gradients (several optimizers).
        self.reduce_gradients = False
        self._dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {k: s.optimizer for k, s in self.slots.items()}

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._dtype)

    @property
    def accumulating(self) -> bool:
        """True when the current micro-batch is not the last of an accumulation group."""
        return (self.micro_step + 1) % self.grad_accum != 0

    def backward(self, loss: Tensor, name: str = "main") -> None:
        slot = self.slots[name]
        if (self.l1 or self.l2) and slot.penalised:
            penalty = loss.new_zeros(())
            for w in slot.penalised:
                if not w.requires_grad:  # frozen for now (fine-tuning): a constant, left out of the loss
                    continue
                if self.l1:
                    penalty = penalty + self.l1 * w.abs().sum()
                if self.l2:
                    penalty = penalty + 0.5 * self.l2 * w.pow(2).sum()
            loss = loss + penalty
        if self.grad_accum > 1:
            loss = loss / self.grad_accum
        if slot.scaler is not None:
            loss = slot.scaler.scale(loss)
        loss.backward()

    def step(self, name: str = "main") -> bool:
        if self.accumulating:
            return False
        slot = self.slots[name]
        opt = slot.optimizer
        if self.reduce_gradients:
            average_gradients(opt)
        if slot.scaler is not None:
            slot.scaler.unscale_(opt)
        if self.grad_clip > 0:
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            self.grad_norm = nn.utils.clip_grad_norm_(params, self.grad_clip)
        if slot.scaler is not None:
            slot.scaler.step(opt)
            slot.scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        if slot.scheduler is not None and slot.scheduler_interval == "step":
            slot.scheduler.step()
        return True

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module) -> Iterator[None]:
        """Skip the DDP gradient all-reduce on micro-batches that only accumulate."""
        if self.accumulating and hasattr(model, "no_sync"):
            with model.no_sync():
                yield
        else:
            yield
