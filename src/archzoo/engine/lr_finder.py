"""The learning-rate range test (LR finder) on a copy of a trainer's model and optimizers.

Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017,
https://arxiv.org/abs/1506.01186), section 3.3, as popularised by fastai's ``lr_find``:
train for :math:`N` optimizer steps while the learning rate of one optimizer grows
exponentially from ``start`` to ``end``,

.. math::
    \\eta_i = \\eta_{\\text{start}} \\left(\\eta_{\\text{end}} / \\eta_{\\text{start}}\\right)^{i / (N - 1)},

record the loss :math:`\\ell_i` of each step, smooth it with a bias-corrected exponential
moving average

.. math::
    s_i = \\beta s_{i-1} + (1 - \\beta) \\ell_i, \\qquad \\hat s_i = s_i / (1 - \\beta^{i+1}),

and stop once :math:`\\hat s_i > k \\min_{j \\le i} \\hat s_j` (divergence, :math:`k = 4`).
Two learning rates are read off the curve before divergence:

* **steepest**: where the smoothed loss falls fastest, :math:`\\arg\\min_i d\\hat s / d\\log\\eta`;
  the rate for a constant or decaying schedule, whose ``optim.lr`` is where training starts.
* **minimum**: where the loss stops falling, the minimum of the raw losses under a centred
  (zero-lag) moving average over ``max(3, N // 15)`` steps. For ``optim.scheduler=onecycle``
  ``optim.lr`` is the cycle's peak, and Smith (2018, "A disciplined approach to neural network
  hyper-parameters", https://arxiv.org/abs/1803.09820, section 4.1) takes the peak from the range
  test where the loss stops improving, not where it falls fastest. The trailing average above
  lags by about :math:`\\beta / (1 - \\beta)` steps (49 of a 100-step sweep, four decades of
  :math:`\\eta`), so the minimum is read from the centred one.

The suggestion (``rule="auto"``, the default) is *minimum* for a onecycle slot and *steepest*
for every other schedule; ``rule`` names either one instead.

The sweep runs the task's own ``training_step`` through a :class:`TrainContext` built like the
trainer's (precision, clipping, accumulation, penalties), on deep copies of the model, the task
and every optimizer (their state included): the trainer, its model and a run's files are left as
they were, and the global random state is restored afterwards.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from archzoo.engine.context import OptimizerSlot, TrainContext
from archzoo.engine.optim import build_optimizer, param_groups
from archzoo.engine.pretrained import head_module
from archzoo.errors import UserError
from archzoo.tasks.base import to_device
from archzoo.viz.figure import save_figure

CHECK_EVERY = 10  # optimizer steps between divergence checks (each check reads the losses once)


@dataclass
class LRFindResult:
    """What a sweep measured.

    Attributes:
        lrs: the learning rate of each optimizer step.
        losses: the raw training loss of each step.
        smoothed: the bias-corrected moving average of ``losses``.
        suggestion: the suggested learning rate (``steepest`` or ``minimum``, as ``rule`` says).
        slot: the optimizer swept.
        diverged_at: the step whose smoothed loss passed ``diverge`` times the best, or None.
        rule: which of the two the suggestion is: ``steepest`` or ``minimum``.
        steepest: the learning rate of steepest descent of ``smoothed`` before divergence.
        minimum: the learning rate where the centred average of ``losses`` is lowest before divergence.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    slot: str
    diverged_at: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rule: str = "steepest"
    steepest: float | None = None
    minimum: float | None = None


def smooth(losses: list[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average :math:`\\hat s_i` of ``losses``."""
    out, avg = [], 0.0
    for i, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def divergence(smoothed: list[float], factor: float = 4.0) -> int | None:
    """The first step whose smoothed loss exceeds ``factor`` times the best so far (or is not finite)."""
    best = math.inf
    for i, v in enumerate(smoothed):
        if not math.isfinite(v) or (i > 0 and v > factor * best):
            return i
        best = min(best, v)
    return None


def _window(n: int, stop: int | None, skip: int) -> tuple[int, int]:
    """The steps ``[lo, end)`` a suggestion reads: before the divergence step ``stop``, after ``skip``
    leading ones (fewer when that would leave under 3); too few steps before ``stop`` is refused."""
    end = n if stop is None else stop
    lo = min(skip, max(0, end - 3))
    if end - lo < 3:
        raise UserError(
            f"The loss diverged after {end} steps, too soon to suggest a learning rate; lower --start or raise --steps."
        )
    return lo, end


def suggest(lrs: list[float], smoothed: list[float], stop: int | None, skip: int = 0) -> float:
    """The learning rate where ``smoothed`` falls fastest in :math:`\\log\\eta`, before ``stop``.

    Args:
        lrs: learning rate of each step.
        smoothed: smoothed loss of each step.
        stop: the divergence step (excluded with everything after it), or None.
        skip: leading steps left out (the average's warm-up).
    """
    lo, end = _window(len(smoothed), stop, skip)
    s = np.asarray(smoothed[lo:end], dtype=np.float64)
    x = np.log(np.asarray(lrs[lo:end], dtype=np.float64))
    slope = np.gradient(s, x)  # d s / d log(lr)
    return float(np.exp(x[int(np.argmin(slope))]))


RULES = ("auto", "steepest", "minimum")


def centred_mean(losses: list[float], width: int) -> np.ndarray:
    """The moving average of ``losses`` over ``width`` (odd) steps centred on each, ends padded with the end values."""
    k = width // 2
    padded = np.pad(np.asarray(losses, dtype=np.float64), (k, k), mode="edge")
    return np.convolve(padded, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")


def suggest_minimum(lrs: list[float], losses: list[float], stop: int | None, skip: int = 0) -> float:
    """The learning rate where the loss stops falling: the minimum of :func:`centred_mean` of ``losses``
    over ``max(3, N // 15)`` steps (odd), before ``stop`` and after the first ``skip`` steps."""
    lo, end = _window(len(losses), stop, skip)
    width = max(3, len(lrs) // 15) | 1
    s = centred_mean(losses[:end], width)[lo:]
    finite = np.where(np.isfinite(s), s, np.inf)
    return float(lrs[lo + int(np.argmin(finite))])


def pick_rule(rule: str, scheduler: str) -> str:
    """``auto`` resolved for a slot whose schedule is ``scheduler``: minimum for onecycle, else steepest."""
    if rule not in RULES:
        raise UserError(f"--rule must be one of {', '.join(RULES)}, got '{rule}'.")
    if rule != "auto":
        return rule
    return "minimum" if scheduler == "onecycle" else "steepest"


def _slot_name(trainer: Any, slot: str | None) -> str:
    names = list(trainer.ctx.slots)
    if slot is None:
        if len(names) > 1:
            raise UserError(
                f"Task '{trainer.cfg.task.name}' has {len(names)} optimizers ({', '.join(names)}); "
                "name the one to sweep with --slot."
            )
        return names[0]
    if slot not in names:
        raise UserError(
            f"--slot {slot} names no optimizer of task '{trainer.cfg.task.name}'; it has: {', '.join(names)}."
        )
    return slot


def _copied_context(trainer: Any, model: torch.nn.Module, task: Any) -> TrainContext:
    """A context like the trainer's over ``model`` (a copy): the same optimizers with their state copied."""
    cfg = trainer.cfg
    slots: dict[str, OptimizerSlot] = {}
    for name, (module, _) in task.optimizers(model).items():
        ocfg = trainer.slot_configs[name]
        head = head_module(module, "model.backbone_lr") if cfg.model.backbone_lr is not None else None
        groups, decayed = param_groups(module, ocfg.weight_decay, head, cfg.model.backbone_lr)
        opt = build_optimizer(ocfg, groups)
        opt.load_state_dict(copy.deepcopy(trainer.ctx.slots[name].optimizer.state_dict()))
        slots[name] = OptimizerSlot(opt, module, None, "step", None, decayed)
    t = cfg.train
    return TrainContext(slots, trainer.device, trainer.precision, t.grad_accum, t.grad_clip, cfg.optim.l1, cfg.optim.l2)


def lr_find(
    trainer: Any,
    slot: str | None = None,
    steps: int = 100,
    start: float = 1e-7,
    end: float = 10.0,
    loss_key: str = "loss",
    beta: float = 0.98,
    diverge: float = 4.0,
    rule: str = "auto",
) -> LRFindResult:
    """Sweep one optimizer's learning rate on copies of ``trainer``'s model, task and optimizers.

    Args:
        trainer: a built :class:`~archzoo.engine.trainer.Trainer` (its weights and optimizer state
            are the starting point, and stay untouched).
        slot: the optimizer to sweep; required when the task has several (a GAN).
        steps: optimizer steps of the sweep (default 100); fewer when the loss diverges.
        start: first learning rate (default 1e-7).
        end: last learning rate (default 10).
        loss_key: the training log that is recorded (default ``loss``; a GAN logs ``loss_d``, ``loss_g``).
        beta: smoothing of the moving average (default 0.98).
        diverge: stop once the smoothed loss exceeds this multiple of its best (default 4).
        rule: the suggestion: ``steepest``, ``minimum``, or ``auto`` (minimum for a onecycle slot, else steepest).
    """
    if steps < 5:
        raise UserError(f"--steps must be at least 5, got {steps}.")
    if not (0 < start < end):
        raise UserError(f"The sweep needs 0 < --start < --end, got start={start:g}, end={end:g}.")
    name = _slot_name(trainer, slot)
    chosen = pick_rule(rule, trainer.slot_configs[name].scheduler)
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    model = copy.deepcopy(trainer.model).train()
    task = copy.deepcopy(trainer.task)
    ctx = _copied_context(trainer, model, task)
    opt = ctx.slots[name].optimizer
    ratio = (end / start) ** (1.0 / (steps - 1))
    lrs: list[float] = []
    losses: list[torch.Tensor] = []
    read: list[float] = []
    diverged: int | None = None
    train = trainer.data.train
    bs, seed = trainer.batch_size, trainer.cfg.train.seed
    try:
        epoch = 0
        while len(lrs) < steps and diverged is None:
            batches = train.batches(bs, shuffle=True, seed=seed + 7919, epoch=epoch, augment=True)
            epoch += 1
            for batch in batches:
                lr = start * ratio ** len(lrs)
                for g in opt.param_groups:
                    g["lr"] = lr
                batch = to_device(batch, trainer.device, trainer.memory_format)
                logs = task.training_step(model, batch, ctx)
                if loss_key not in logs:
                    raise UserError(
                        f"Task '{trainer.cfg.task.name}' logs no '{loss_key}'; it logs: {', '.join(logs)} (--loss)."
                    )
                stepped = not ctx.accumulating
                ctx.micro_step += 1
                if not stepped:
                    continue
                lrs.append(lr)
                losses.append(logs[loss_key].detach().float())
                if len(lrs) % CHECK_EVERY == 0 or len(lrs) == steps:
                    read = torch.stack(losses).cpu().tolist()  # one sync per CHECK_EVERY steps
                    diverged = divergence(smooth(read, beta), diverge)
                if diverged is not None or len(lrs) >= steps:
                    break
    finally:
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    if len(read) < len(losses):
        read = torch.stack(losses).cpu().tolist()
    smoothed = smooth(read, beta)
    stop = divergence(smoothed, diverge)
    skip = min(10, steps // 10)
    steepest = suggest(lrs, smoothed, stop, skip=skip)
    minimum = suggest_minimum(lrs, read, stop, skip=skip)
    suggestion = minimum if chosen == "minimum" else steepest
    return LRFindResult(lrs, read, smoothed, suggestion, name, stop, rule=chosen, steepest=steepest, minimum=minimum)


def plot_lr_find(result: LRFindResult, path: Path, title: str = "") -> Path:
    """Save the smoothed loss against the learning rate (log x), the suggestion marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = len(result.smoothed) if result.diverged_at is None else result.diverged_at + 1
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs[:end], result.smoothed[:end], label="smoothed loss")
    ax.plot(result.lrs[:end], result.losses[:end], alpha=0.25, label="loss")
    i = int(np.argmin(np.abs(np.log(result.lrs[:end]) - math.log(result.suggestion))))
    ax.scatter([result.suggestion], [result.smoothed[i]], color="red", zorder=3)
    ax.axvline(
        result.suggestion, color="red", ls="--", lw=1, label=f"suggested lr {result.suggestion:.2e} ({result.rule})"
    )
    other = result.minimum if result.rule == "steepest" else result.steepest
    if other is not None and other != result.suggestion:
        name = "minimum" if result.rule == "steepest" else "steepest"
        ax.axvline(other, color="gray", ls="--", lw=1, alpha=0.7, label=f"{name} {other:.2e}")
    if result.diverged_at is not None:
        ax.axvline(result.lrs[result.diverged_at], color="gray", ls=":", lw=1, label="divergence")
    finite = [v for v in result.smoothed[:end] if math.isfinite(v)]
    raw = [v for v in result.losses[:end] if math.isfinite(v)]
    if finite:
        low = min(finite + raw)
        ax.set_ylim(low - 0.05 * abs(low), min(max(finite), 4 * min(finite) + 1e-12) * 1.05)
    ax.set_xscale("log")
    ax.set_xlabel(f"learning rate ({result.slot})")
    ax.set_ylabel("training loss")
    ax.set_title(title or "LR range test")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=100)


def apply_file(path: Path, result: LRFindResult, several: bool) -> Path:
    """Write (or update) an override YAML for ``train --config``: ``optim.lr``, or the slot's lr."""
    import yaml

    from archzoo.config import load_yaml

    raw: dict[str, Any] = load_yaml(path) if path.is_file() else {}
    optim = raw.setdefault("optim", {})
    if not isinstance(optim, dict):
        raise UserError(f"{path} holds 'optim' that is not a mapping; --apply cannot add the learning rate to it.")
    lr = float(f"{result.suggestion:.4g}")
    if several:
        optim.setdefault("slots", {}).setdefault(result.slot, {})["lr"] = lr
    else:
        optim["lr"] = lr
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def lr_find_command(
    target: str,
    overrides: list[str],
    slot: str | None,
    steps: int,
    start: float,
    end: float,
    out: str | None,
    apply: str | None,
    loss_key: str = "loss",
    data_dir: str | None = None,
    rule: str = "auto",
) -> dict[str, Any]:
    """``archzoo lr-find RECIPE|RUN``: sweep, plot, optionally write the override file; returns the summary."""
    import tempfile

    from archzoo.config import load_config
    from archzoo.engine import checkpoint as ckpt
    from archzoo.engine.trainer import Trainer

    rd = Path(target)
    is_run = (rd / "config.yaml").is_file()
    cfg = load_config(None, rd / "config.yaml", overrides) if is_run else load_config(target, None, overrides)
    cfg.log.progress = "none"
    with tempfile.TemporaryDirectory() as tmp:  # the Trainer writes nothing before fit(); this is never used
        trainer = Trainer(cfg, run_dir=Path(tmp) / "unused", data_dir=data_dir, load_pretrained=not is_run)
    if is_run:
        last = ckpt.latest_checkpoint(rd / "checkpoints")
        if last is not None:
            trainer._load_state(last)  # reads the weights and optimizer state; writes nothing
        elif (rd / "model.safetensors").is_file():
            ckpt.load_into(trainer.model, ckpt.load_weights_file(rd / "model.safetensors"), rd / "model.safetensors")
        else:
            raise UserError(f"Run {rd} has no checkpoint and no model.safetensors to start the sweep from.")
    result = lr_find(trainer, slot, steps, start, end, loss_key, rule=rule)
    default = rd / "plots" / "lr_find.png" if is_run else Path(f"lr_find-{cfg.recipe}.png")
    plot = plot_lr_find(result, Path(out) if out else default, f"LR range test: {cfg.recipe}")
    several = len(trainer.ctx.slots) > 1
    summary: dict[str, Any] = {
        "suggested_lr": result.suggestion,
        "rule": result.rule,
        "steepest_lr": result.steepest,
        "minimum_lr": result.minimum,
        "slot": result.slot,
        "steps_run": len(result.lrs),
        "diverged_at_lr": None if result.diverged_at is None else result.lrs[result.diverged_at],
        "plot": str(plot),
    }
    if apply:
        summary["override_file"] = str(apply_file(Path(apply), result, several))
    return summary
