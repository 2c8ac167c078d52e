"""Reference plots: activation functions, optimizers on one recipe, and loss functions.

* ``archzoo plot activations``: ReLU, Leaky ReLU, ELU, sigmoid, tanh, Swish (SiLU) and GELU
  from :func:`~archzoo.layers.activation.get_activation` (the modules models use), with their
  derivatives computed by autograd.
* ``archzoo plot optimizers RECIPE``: the recipe trained once per optimizer through the real
  :class:`~archzoo.engine.trainer.Trainer` (same seed, so the same initial weights and batches),
  the training loss of every step on one figure.
* ``archzoo plot losses``: regression, probability and margin losses against the prediction
  for a fixed target, from ``torch.nn.functional``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from archzoo.errors import UserError
from archzoo.viz.figure import save_figure

#: The plotted activations and the resolver names they come from (leaky_relu has slope 0.2 there).
ACTIVATIONS = {
    "relu": "ReLU",
    "leaky_relu": "Leaky ReLU (0.2)",
    "elu": "ELU",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "swish": "Swish / SiLU",
    "gelu": "GELU",
}
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad", "nadam")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------- activations


def activation_curves(x: Tensor, names: list[str] | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    r"""Each activation :math:`f` and its derivative :math:`f'` at ``x``, the derivative by autograd.

    The resolver's modules may work in place, so each runs on a copy of the leaf ``x``;
    :math:`f'(x)` is :math:`\partial \sum_i f(x_i) / \partial x`, exact since :math:`f` acts elementwise.

    Args:
        x: points :math:`(N,)`.
        names: resolver names (default all of :data:`ACTIVATIONS`).

    Returns ``{name: (f(x), f'(x))}``, each :math:`(N,)`.
    """
    from archzoo.layers.activation import get_activation

    out = {}
    for name in names or list(ACTIVATIONS):
        leaf = x.detach().clone().requires_grad_(True)
        y = get_activation(name)(leaf.clone())  # a copy: in-place modules may not write into a leaf
        (dy,) = torch.autograd.grad(y.sum(), leaf)
        out[name] = (y.detach(), dy.detach())
    return out


def plot_activations(out: Path, lo: float = -4.0, hi: float = 4.0, points: int = 801) -> Path:
    """The activations (left) and their derivatives (right) on :math:`[lo, hi]`, as a PNG."""
    plt = _plt()
    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    curves = activation_curves(x)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, (y, dy) in curves.items():
        a1.plot(x, y, label=ACTIVATIONS[name])
        a2.plot(x, dy, label=ACTIVATIONS[name])
    a1.set_title("activation f(x)")
    a2.set_title("derivative f'(x) (autograd)")
    a1.set_ylim(-1.5, 4)
    a2.set_ylim(-0.2, 1.3)
    for a in (a1, a2):
        a.axhline(0, color="grey", lw=0.5)
        a.axvline(0, color="grey", lw=0.5)
        a.set_xlabel("x")
        a.legend(fontsize=8)
    return save_figure(fig, out, dpi=100)


# ----------------------------------------------------------------------------- optimizers

# Keys the optimizer comparison sets itself; an override of one would be silently replaced.
_SET_KEYS = ("optim.name", "train.max_steps", "train.epochs", "train.log_every", "train.eval_every",
             "train.eval_epoch_end", "train.early_stopping", "train.checkpoint_every", "train.max_time")  # fmt: skip


def _step_trainer() -> type:
    """A Trainer that keeps the training loss of every optimizer step (``train.log_every=1``).

    The loop logs running sums of the epoch's losses; the difference of two consecutive sums
    over the difference of their counts is the loss of the step between them.
    """
    from archzoo.engine.trainer import Trainer

    class StepLossTrainer(Trainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sums: list[tuple[Tensor, Any]] = []

        def _log_train(self, log: Any, elapsed: float) -> None:
            self.sums.append((self.train_sums["loss"], self.train_count))
            super()._log_train(log, elapsed)

        def step_losses(self) -> list[float]:
            out = []
            prev_sum, prev_count = 0.0, 0.0
            for s, c in self.sums:
                s, c = float(s), float(c)
                if c < prev_count:  # a new epoch reset the sums
                    prev_sum, prev_count = 0.0, 0.0
                out.append((s - prev_sum) / max(c - prev_count, 1e-12))
                prev_sum, prev_count = s, c
            return out

    return StepLossTrainer


def parse_optimizers(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError("--optimizers needs at least one name.")
    bad = [n for n in names if n not in OPTIMIZERS]
    if bad:
        raise UserError(f"Unknown optimizer '{bad[0]}' in --optimizers; choose from {', '.join(OPTIMIZERS)}.")
    if len(set(names)) != len(names):
        raise UserError("--optimizers names an optimizer twice.")
    return names


def optimizer_curves(
    recipe: str,
    overrides: list[str] | None = None,
    optimizers: list[str] | None = None,
    steps: int = 100,
    data_dir: str | None = None,
) -> dict[str, list[float]]:
    """Train ``recipe`` for ``steps`` optimizer steps with each optimizer; the loss of every step.

    Every run has the recipe's seed, so the same initial weights and batch order: the first
    loss is the same for all. ``sgd`` runs with ``optim.momentum=0`` (plain SGD); ``momentum``
    is SGD with the configured momentum (0.9 by default). The learning rate is the recipe's,
    held constant (``optim.scheduler=none``) unless the overrides set another.
    """
    from archzoo.config import load_config, parse_override

    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}.")
    overrides = list(overrides or [])
    for item in overrides:
        key = ".".join(parse_override(item)[0])
        if key in _SET_KEYS:
            raise UserError(f"plot optimizers sets {key} itself (use --optimizers and --steps); drop '{item}'.")
    cls = _step_trainer()
    out = {}
    for name in optimizers or list(OPTIMIZERS):
        own = [
            f"optim.name={name}",
            f"train.max_steps={steps}",
            "train.epochs=1000000",
            "train.log_every=1",
            f"train.eval_every={steps}",
            "train.eval_epoch_end=false",
            "train.early_stopping=0",
            "train.checkpoint_every=1000000 epochs",
            "log.progress=none",
            "log.tensorboard=false",
            "log.plots=false",
        ]
        if name == "sgd":
            own.append("optim.momentum=0")
        # A constant learning rate unless the overrides ask for a schedule: the curves then show
        # the update rules alone (and short runs avoid schedules sized for whole trainings).
        cfg = load_config(recipe, None, ["optim.scheduler=none", *overrides, *own])
        with tempfile.TemporaryDirectory() as tmp:
            trainer = cls(cfg, run_dir=Path(tmp) / name, data_dir=data_dir)
            trainer.fit()
            out[name] = trainer.step_losses()
    return out


def plot_optimizers(curves: dict[str, list[float]], out: Path, title: str = "") -> Path:
    """The loss of every step of each optimizer on one figure (log scale), as a PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=name, lw=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss of the step")
    if all(v > 0 for losses in curves.values() for v in losses if math.isfinite(v)):
        ax.set_yscale("log")
    ax.set_title(title or "optimizers")
    ax.legend()
    return save_figure(fig, out, dpi=100)


# ----------------------------------------------------------------------------- losses


def loss_curves(points: int = 401) -> dict[str, dict[str, Tensor]]:
    r"""Losses against the prediction for a fixed target, from ``torch.nn.functional``.

    * ``regression``: prediction :math:`\hat y \in [-3, 3]`, target 0: MSE :math:`\hat y^2`,
      L1 :math:`|\hat y|`, Huber (:math:`\delta = 1`): :math:`\tfrac12 \hat y^2` for
      :math:`|\hat y| \le 1`, else :math:`|\hat y| - \tfrac12`.
    * ``probability``: predicted probability :math:`p` of the true class (two classes): BCE
      :math:`-\log p`, NLL of the log-probabilities :math:`-\log p`, and KL from the target
      distribution :math:`(0.7, 0.3)` to :math:`(p, 1-p)`:
      :math:`0.7 \log\frac{0.7}{p} + 0.3 \log\frac{0.3}{1-p}`.
    * ``margin``: logit :math:`z` of the true class among three, the others 0: cross-entropy
      :math:`\log(e^z + 2) - z` and the multi-class hinge (margin 1)
      :math:`\tfrac13 \cdot 2 \max(0, 1 - z)`.

    Returns ``{panel: {"x": x, name: loss(x)}}``, each :math:`(N,)`.
    """
    p_reg = torch.linspace(-3, 3, points, dtype=torch.float64)
    zero = torch.zeros_like(p_reg)
    reg = {
        "x": p_reg,
        "mse": F.mse_loss(p_reg, zero, reduction="none"),
        "l1": F.l1_loss(p_reg, zero, reduction="none"),
        "huber": F.huber_loss(p_reg, zero, reduction="none", delta=1.0),
    }
    p = torch.linspace(0.005, 0.995, points, dtype=torch.float64)
    two = torch.stack([p, 1 - p], dim=1)  # (N, 2): class 0 is the true one
    true = torch.zeros(points, dtype=torch.int64)
    target = torch.tensor([0.7, 0.3], dtype=torch.float64).expand(points, 2)
    prob = {
        "x": p,
        "bce": F.binary_cross_entropy(p, torch.ones_like(p), reduction="none"),
        "nll": F.nll_loss(two.log(), true, reduction="none"),
        "kl": F.kl_div(two.log(), target, reduction="none").sum(1),
    }
    z = torch.linspace(-4, 4, points, dtype=torch.float64)
    logits = torch.stack([z, torch.zeros_like(z), torch.zeros_like(z)], dim=1)  # (N, 3)
    margin = {
        "x": z,
        "ce": F.cross_entropy(logits, true, reduction="none"),
        "hinge": F.multi_margin_loss(logits, true, margin=1.0, reduction="none"),
    }
    return {"regression": reg, "probability": prob, "margin": margin}


def plot_losses(out: Path) -> Path:
    """The three panels of :func:`loss_curves` as a PNG."""
    plt = _plt()
    curves = loss_curves()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = {
        "regression": ("prediction (target 0)", {"mse": "MSE", "l1": "L1", "huber": "Huber (delta 1)"}),
        "probability": (
            "predicted probability of the true class",
            {"bce": "BCE (target 1)", "nll": "NLL of log p", "kl": "KL((0.7, 0.3) || (p, 1-p))"},
        ),
        "margin": ("logit of the true class (2 others at 0)", {"ce": "cross-entropy", "hinge": "hinge (margin 1)"}),
    }
    for ax, (panel, data) in zip(axes, curves.items(), strict=True):
        xlabel, names = labels[panel]
        for i, (key, label) in enumerate(names.items()):
            ax.plot(data["x"], data[key], label=label, ls="--" if i == 1 else "-")  # NLL lies on BCE: dashed
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss")
        ax.set_title(panel)
        ax.set_ylim(0, 5)
        ax.legend(fontsize=8)
    return save_figure(fig, out, dpi=100)
