"""The step context the engine hands to a task: backward, step, autocast.

It hides gradient accumulation, gradient clipping, fp16 loss scaling, L1/L2
penalties, max-norm constraints, gradient-norm logging and learning-rate
scheduling from the task, so a task with one optimizer and a GAN task with two
use the same loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
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
    max_norm: float = 0.0  # optim.weight_max_norm of this slot (0: off)
    max_normed: list[tuple[Tensor, int]] = field(default_factory=list)  # (weight, output-unit dim) it applies to


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


def total_norm(grads: list[Tensor]) -> Tensor:
    """The global L2 norm :math:`\\sqrt{\\sum_i \\lVert g_i \\rVert_2^2}`, as ``clip_grad_norm_`` computes it."""
    if hasattr(nn.utils, "get_total_norm"):  # torch >= 2.6: fused per-device norms
        return nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))


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
        log_grad_norm: keep, per slot, the sum and count of the global gradient norms
            :math:`\\lVert g \\rVert_2` of its steps (before clipping, after unscaling) as device
            tensors, read by :meth:`pop_grad_norms` when a row is logged.
        skip_nonfinite: skip an optimizer step whose loss (any micro-batch's, since the slot's last
            step) or whose gradients (after unscaling) are not finite: no update, no scheduler step,
            the optimizer's state untouched, the gradients dropped; the slot's name goes into
            :attr:`skipped`. Deciding needs the flag on the host: one device sync per step (the
            GradScaler of fp16 makes the same one), and under DDP one all-reduce of the flag, so every
            rank skips together.
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
        log_grad_norm: bool = False,
        skip_nonfinite: bool = False,
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
        self.grad_norm: Tensor | None = None  # the last step's global gradient norm, when computed
        self.log_grad_norm = bool(log_grad_norm)
        self._norm_sums: dict[str, Tensor] = {}  # per slot: sum of the finite norms since the last pop
        self._norm_counts: dict[str, Tensor] = {}  # per slot: how many there were
        # Called as observer(slot_name, slot) after clipping and before the optimizer step, with the
        # gradients in place (the engine sets it on the steps whose histograms are due).
        self.grad_observer: Callable[[str, OptimizerSlot], None] | None = None
        # Set by the engine under DDP when no wrapper reduces the gradients (several optimizers).
        self.reduce_gradients = False
        self._dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.skip_nonfinite = bool(skip_nonfinite)
        self._loss_bad: dict[str, Tensor] = {}  # per slot: any non-finite loss since its last step (device)
        # The slots whose step was skipped (train.skip_nonfinite); the engine empties it before each batch.
        self.skipped: set[str] = set()

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
        if self.skip_nonfinite:
            bad = ~torch.isfinite(loss.detach()).all()
            self._loss_bad[name] = bad if name not in self._loss_bad else self._loss_bad[name] | bad
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
        if self.skip_nonfinite and not self._finite(name, opt):
            opt.zero_grad(set_to_none=True)
            if slot.scaler is not None:
                slot.scaler.update()  # backs the scale off, as for any step with inf gradients
            self.skipped.add(name)
            return False
        if self.grad_clip > 0 or self.log_grad_norm:
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            if self.grad_clip > 0:  # clipping returns the norm before it clips
                self.grad_norm = nn.utils.clip_grad_norm_(params, self.grad_clip)
            elif params:
                self.grad_norm = total_norm([p.grad for p in params])  # type: ignore[misc]
            else:
                self.grad_norm = None
            if self.log_grad_norm and self.grad_norm is not None:
                self._note_grad_norm(name, self.grad_norm.detach())
        if self.grad_observer is not None:
            self.grad_observer(name, slot)
        if slot.scaler is not None:
            slot.scaler.step(opt)
            slot.scaler.update()
        else:
            opt.step()
        if slot.max_norm > 0 and slot.max_normed:
            apply_max_norm(slot.max_normed, slot.max_norm)
        opt.zero_grad(set_to_none=True)
        if slot.scheduler is not None and slot.scheduler_interval == "step":
            slot.scheduler.step()
        return True

    def _finite(self, name: str, opt: torch.optim.Optimizer) -> bool:
        """Whether slot ``name``'s losses since its last step and its gradients are all finite (one host sync)."""
        bad = self._loss_bad.pop(name, None)
        flag = torch.zeros((), device=self.device) if bad is None else bad.float().to(self.device)
        groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
        for g in opt.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    grad = p.grad.coalesce()._values() if p.grad.is_sparse else p.grad
                    groups.setdefault((grad.device, grad.dtype), []).append(grad)
        for (device, _), grads in groups.items():
            # GradScaler's fused check: sets found to 1 where any gradient is inf or NaN (times 1: unchanged).
            found = torch.zeros((), device=device)
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones((), device=device))
            flag = torch.maximum(flag, found.to(flag.device))
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # a step skipped on one rank is skipped on all
        return not bool(flag)  # the one host sync of this mode

    def _note_grad_norm(self, name: str, norm: Tensor) -> None:
        """Add a step's norm to the slot's running sum on the device (a skipped fp16 step's inf is left out)."""
        finite = torch.isfinite(norm)
        value = torch.where(finite, norm.float(), torch.zeros((), device=norm.device))
        self._norm_sums[name] = self._norm_sums.get(name, 0) + value
        self._norm_counts[name] = self._norm_counts.get(name, 0) + finite.float()

    def pop_grad_norms(self) -> dict[str, float]:
        """The mean gradient norm of each slot's steps since the last call (a host sync), then reset.

        Keys are ``train/grad_norm`` for a task with one optimizer, ``train/grad_norm_<slot>`` for several;
        a slot without finite norms since the last call is left out.
        """
        out: dict[str, float] = {}
        for k, total in self._norm_sums.items():
            count = float(self._norm_counts[k])
            if count:
                key = "train/grad_norm" if len(self.slots) == 1 else f"train/grad_norm_{k}"
                out[key] = float(total) / count
        self._norm_sums, self._norm_counts = {}, {}
        return out

    def grad_norm_state(self) -> dict[str, dict[str, Tensor]]:
        """The norms summed since the last row, for a checkpoint (so a resumed run logs the same means)."""
        return {
            "sums": {k: torch.as_tensor(v).detach().cpu() for k, v in self._norm_sums.items()},
            "counts": {k: torch.as_tensor(v).detach().cpu() for k, v in self._norm_counts.items()},
        }

    def load_grad_norm_state(self, state: dict[str, dict[str, Tensor]]) -> None:
        self._norm_sums = {k: v.to(self.device) for k, v in state.get("sums", {}).items()}
        self._norm_counts = {k: v.to(self.device) for k, v in state.get("counts", {}).items()}

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module) -> Iterator[None]:
        """Skip the DDP gradient all-reduce on micro-batches that only accumulate."""
        if self.accumulating and hasattr(model, "no_sync"):
            with model.no_sync():
                yield
        else:
            yield


def max_norm_targets(module: nn.Module, weights: list[Tensor]) -> list[tuple[Tensor, int]]:
    """Each of ``weights`` (a slot's decayed weights: no biases, no norms) with the dimension of its output units.

    That is dim 0 of a Linear ``(out, in)``, Conv ``(out, in/groups, k...)`` or Embedding ``(num, dim)``
    weight (an embedding's row is one token's vector), and dim 1 of a transposed convolution's
    ``(in, out/groups, k...)`` weight.
    """
    chosen = {id(w) for w in weights}
    out: list[tuple[Tensor, int]] = []
    for mod in module.modules():
        for p in mod.parameters(recurse=False):
            if id(p) in chosen:
                chosen.discard(id(p))  # a shared weight is constrained once
                out.append((p, 1 if isinstance(mod, nn.modules.conv._ConvTransposeNd) else 0))
    return out


@torch.no_grad()
def apply_max_norm(targets: list[tuple[Tensor, int]], max_norm: float) -> None:
    r"""Max-norm constraint (Srebro et al. 2005; Hinton et al. 2012, `"Improving neural networks by
    preventing co-adaptation of feature detectors" <https://arxiv.org/abs/1207.0580>`_).

    For every output unit :math:`j` of each weight :math:`W`, :math:`w_j \leftarrow w_j \cdot
    \min(1, c / \lVert w_j \rVert_2)`, where :math:`w_j` is the slice along the output-unit
    dimension (all its incoming weights). Units already within the ball are left bit for bit;
    frozen weights (``requires_grad=False``) are not touched.

    Args:
        targets: ``(weight, dim)`` pairs from :func:`max_norm_targets`.
        max_norm: the radius :math:`c`.
    """
    for w, dim in targets:
        if w.requires_grad:
            w.renorm_(2, dim, max_norm)
