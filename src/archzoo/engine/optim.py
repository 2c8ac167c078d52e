"""Optimizers and learning-rate schedules by name.

Weight decay applies to weights only: biases, norm layers' affine parameters
and embeddings of positions (1-D tensors in general) are put in a group with
``weight_decay=0``, as is standard practice since "Bag of Tricks" (He et al. 2019).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.config import OptimConfig
from archzoo.errors import UserError


def param_groups(
    module: nn.Module, weight_decay: float, head: nn.Module | None = None, backbone_lr: float | None = None
) -> tuple[list[dict[str, Any]], list[Tensor]]:
    """Split the parameters into a decayed and an undecayed group.

    Frozen parameters (``requires_grad=False``) stay in the groups: an optimizer skips a
    parameter whose ``grad`` is None, so unfreezing one later needs no new optimizer.
    With ``head`` and ``backbone_lr``, the head's parameters and the rest (the backbone)
    form separate decay/no-decay groups, the backbone's with ``lr=backbone_lr``.

    Args:
        module: what the optimizer trains.
        weight_decay: the decay of the decayed groups.
        head: the classifier head inside ``module`` (with ``backbone_lr``).
        backbone_lr: the learning rate of everything outside ``head``; None: one lr for all.

    Returns the groups (head first) and the list of decayed weights (the ones L1/L2 penalties apply to).
    """
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    seen: set[int] = set()
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
    for mod in module.modules():
        for name, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if p.ndim <= 1 or name.endswith("bias") or isinstance(mod, norm_types):
                no_decay.append(p)
            else:
                decay.append(p)
    split = head is not None and backbone_lr is not None
    in_head = {id(p) for p in head.parameters()} if split and head is not None else set()
    groups: list[dict[str, Any]] = []
    for part, extra in (("head", {}), ("backbone", {"lr": backbone_lr})) if split else (("all", {}),):
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            chosen = [p for p in params if part == "all" or (id(p) in in_head) == (part == "head")]
            if chosen:
                groups.append({"params": chosen, "weight_decay": wd, **extra})
    return groups, decay


def build_optimizer(cfg: OptimConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Create the optimizer ``cfg.name`` over ``groups``.

    ``cfg`` is one slot's resolved settings (:meth:`~archzoo.config.OptimConfig.for_slot`);
    unset name, lr and betas fall back to adamw, 1e-3 and (0.9, 0.999).
    """
    if cfg.name is None or cfg.lr is None or cfg.betas is None:
        cfg = cfg.for_slot("main")
    name, lr, betas = cfg.name, cfg.lr, tuple(cfg.betas)
    if not groups:
        raise UserError("The model has no trainable parameters.")
    if name in ("sgd", "momentum"):  # momentum: the same SGD, named for its (required) momentum
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    elif name == "rmsprop":
        opt = torch.optim.RMSprop(groups, lr=lr, momentum=cfg.momentum, eps=cfg.eps)
    elif name == "adam":
        opt = torch.optim.Adam(groups, lr=lr, betas=betas, eps=cfg.eps)  # type: ignore[arg-type]
    elif name == "adamw":
        opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=cfg.eps)  # type: ignore[arg-type]
    elif name == "adagrad":
        opt = torch.optim.Adagrad(groups, lr=lr, eps=cfg.eps)
    elif name == "nadam":
        opt = torch.optim.NAdam(groups, lr=lr, betas=betas, eps=cfg.eps)  # type: ignore[arg-type]
    else:
        raise UserError(f"Unknown optimizer '{name}'.")
    return opt


class WarmupCosine:
    r"""Linear warmup to the peak, then cosine decay to ``min_lr``, as a LambdaLR factor.

    :math:`f(s) = s / W` for :math:`s < W`, else
    :math:`m + (1 - m)\,\tfrac{1}{2}(1 + \cos(\pi \tfrac{s - W}{S - W}))` with :math:`m = \text{min\_lr}/\text{lr}`.
    """

    def __init__(self, warmup: int, total: int, floor: float) -> None:
        self.warmup, self.total, self.floor = warmup, max(total, 1), floor

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * t))


def build_scheduler(
    cfg: OptimConfig, opt: torch.optim.Optimizer, steps_per_epoch: int, total_steps: int
) -> tuple[Any, str]:
    """Create the schedule ``cfg.scheduler``; returns it and when to step it (step, epoch or plateau).

    ``steps_per_epoch`` and ``total_steps`` count this optimizer's own steps (a slot stepped every
    few batches has fewer), so step-shaped schedules run their whole course over the run.
    """
    total = max(1, total_steps)
    lr = opt.param_groups[0]["lr"]
    s = cfg.scheduler
    if s == "none":
        return None, "step"
    if s == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"
    if s == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma), "epoch"
    if s == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=cfg.min_lr), "step"
    if s == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=cfg.gamma, patience=cfg.plateau_patience, min_lr=cfg.min_lr
        )
        return sched, "plateau"
    if s == "onecycle":
        # OneCycleLR's warm-up phase ends at step pct_start * total - 1; when that is exactly 0 (4 steps at the
        # default 0.25) torch divides by the phase's zero length, so the phase is made a hair longer.
        pct = cfg.pct_start + (1e-6 / total if abs(cfg.pct_start * total - 1) < 1e-9 else 0.0)
        return (
            torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=[g["lr"] for g in opt.param_groups],
                total_steps=total,
                pct_start=pct,
                # Adagrad has neither momentum nor betas; SGD without momentum keeps none.
                cycle_momentum=("betas" in opt.defaults) or opt.defaults.get("momentum", 0) > 0,
            ),
            "step",
        )
    if s == "warmup_cosine":
        warm = cfg.warmup_steps or int(round(cfg.warmup_epochs * steps_per_epoch))
        return torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(warm, total, cfg.min_lr / lr)), "step"
    raise UserError(f"Unknown scheduler '{s}'.")
