"""A layer table for ``archzoo summary``: output shape and parameters of every leaf module."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archzoo.errors import UserError


def _shape(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return "×".join(str(s) for s in out.shape)
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return _shape(out[0]) + (f" (+{len(out) - 1})" if len(out) > 1 else "")
    return "-"


def layer_table(model: nn.Module, x: torch.Tensor | tuple[Any, ...]) -> tuple[list[tuple[str, str, str, int]], Any]:
    """Run ``x`` (one input, or forward's argument tuple) through ``model``; return rows
    (name, type, output shape, own parameters) and the output."""
    args = x if isinstance(x, tuple) else (x,)
    rows: list[tuple[str, str, str, int]] = []
    hooks = []
    for name, mod in model.named_modules():
        if name and not list(mod.children()):
            own = sum(p.numel() for p in mod.parameters(recurse=False))

            def hook(m: nn.Module, inp: Any, out: Any, name: str = name, own: int = own) -> None:
                rows.append((name, type(m).__name__, _shape(out), own))

            hooks.append(mod.register_forward_hook(hook))
    model.eval()
    try:
        with torch.no_grad():
            # Generative models (GANs, diffusion) define what one training pass over an input runs.
            out = getattr(model, "training_forward", model)(*args)
    except RuntimeError as e:
        raise UserError(
            f"The model cannot take an input of shape {_shape(args[0])} ({str(e).splitlines()[0]})."
        ) from None
    finally:
        for h in hooks:
            h.remove()
    return rows, out


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UserError(f"--input must be comma-separated integers such as 1,28,28, got '{text}'.") from None


def format_table(model: nn.Module, title: str, x: torch.Tensor | tuple[Any, ...]) -> str:
    """The layer table of ``model`` on input ``x``, with its title, output shape and parameter counts."""
    rows, out = layer_table(model, x)
    first = x[0] if isinstance(x, tuple) else x
    w_name = max([len(r[0]) for r in rows] + [5])
    w_type = max([len(r[1]) for r in rows] + [4])
    lines = [
        f"{title}: input {_shape(first)}",
        f"{'layer':<{w_name}}  {'type':<{w_type}}  {'output':<18}  {'params':>10}",
    ]
    lines.append("-" * len(lines[-1]))
    for n, t, s, p in rows:
        lines.append(f"{n:<{w_name}}  {t:<{w_type}}  {s:<18}  {p:>10,}")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines.append("-" * len(lines[1]))
    lines.append(f"output {_shape(out)}; parameters {total:,} ({trainable:,} trainable)")
    return "\n".join(lines)
