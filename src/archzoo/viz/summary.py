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


def layer_table(model: nn.Module, x: torch.Tensor) -> tuple[list[tuple[str, str, str, int]], Any]:
    """Run ``x`` through ``model`` and return rows (name, type, output shape, own parameters) and the output."""
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
            out = getattr(model, "training_forward", model)(x)
    except RuntimeError as e:
        raise UserError(
            f"The model cannot take an input of shape {tuple(x.shape)} ({str(e).splitlines()[0]})."
        ) from None
    finally:
        for h in hooks:
            h.remove()
    return rows, out


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UserError(f"--input must be comma-separated integers such as 1,28,28, got '{text}'.") from None


def summarize(name: str, overrides: list[str], input_shape: str | None, data_dir: str | None, is_recipe: bool) -> str:
    from archzoo.config import load_config
    from archzoo.engine.builders import accepted, build_data, build_model

    if is_recipe:
        cfg = load_config(name, None, overrides)
        info: dict[str, Any] = {}
        if input_shape is None:
            info = build_data(cfg, data_dir).info
        model = build_model(cfg, info)
        title = f"{name} ({cfg.model.name})"
    else:
        import yaml

        from archzoo.registry import create_model

        kwargs = {}
        for item in overrides:
            if "=" not in item:
                raise UserError(f"Model argument '{item}' must look like key=value.")
            k, _, v = item.partition("=")
            kwargs[k] = yaml.safe_load(v)
        shape_given = _parse_shape(input_shape) if input_shape else None
        if shape_given is not None and len(shape_given) == 3:
            # An image input says the channels and the size the model is built for, unless set.
            from archzoo.registry import MODELS

            takes = accepted(MODELS.get(name))
            if "in_channels" in takes:
                kwargs.setdefault("in_channels", shape_given[0])
            if "image_size" in takes:
                kwargs.setdefault("image_size", shape_given[1])
        model = create_model(name, **kwargs)
        info = {}
        title = name
    if input_shape:
        shape = _parse_shape(input_shape)
    elif "image_size" in info:
        shape = (info.get("in_channels", 1), info["image_size"], info["image_size"])
    elif "in_features" in info:
        shape = (info["in_features"],)
    else:
        c = getattr(model, "in_channels", 3)
        shape = (c, 224, 224) if not hasattr(model, "in_features") else (model.in_features,)
    x = torch.randn(2, *shape)
    rows, out = layer_table(model, x)
    w_name = max([len(r[0]) for r in rows] + [5])
    w_type = max([len(r[1]) for r in rows] + [4])
    lines = [
        f"{title}: input {'×'.join(map(str, (2, *shape)))}",
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
