"""Pretrained weights and transfer learning: load a state dict into a model, freeze its backbone.

:func:`load_pretrained` reads weights from a safetensors file, a torch state-dict
file (only through ``torch.load(weights_only=True)``, which refuses any pickled
object that is not a tensor or a container of them), an archzoo run directory
or a folder such as a local hub cache, and loads them with strict checks: every
tensor must match the model by name and shape except those of the classifier
head, which start fresh when their shapes differ (a new head for the new
dataset's classes).

Freezing follows the usual fine-tuning recipe: train only the head first
(``model.freeze=backbone``), then unfreeze the last stage after a few epochs
(``model.unfreeze_after``), optionally with a smaller learning rate for the
backbone (``model.backbone_lr``). Which parameters train is a pure function of
the epoch, so a resumed run freezes exactly as the uninterrupted one. Only the
generic interface of the classifiers is used: ``classifier_name`` (the head's
attribute, also ``get_classifier()``) and ``stages`` (the backbone's stages in
order).
"""

from __future__ import annotations

import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from archzoo.engine.checkpoint import load_weights_file, unwrap
from archzoo.errors import CheckpointError, UserError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
PREFIXES = ("module.", "_orig_mod.", "model.")  # DDP, torch.compile, Lightning / wrapper modules
NESTED_KEYS = ("state_dict", "model")  # Lightning / timm training checkpoints hold the weights under one of these
FREEZE_MODES = ("none", "backbone")


@dataclass(frozen=True)
class PretrainedReport:
    """What :func:`load_pretrained` did: the file, tensors loaded, and the head keys left fresh."""

    path: Path
    loaded: int
    new_head: tuple[str, ...]
    num_classes: int | None


# ----------------------------------------------------------------------------- the head and the stages


def head_module(model: nn.Module, what: str = "model.freeze") -> nn.Module:
    """The classifier head named by ``model.classifier_name``; a one-sentence UserError if there is none."""
    m = unwrap(model)
    name = getattr(m, "classifier_name", None)
    head = getattr(m, name, None) if isinstance(name, str) else None
    if not isinstance(head, nn.Module) and hasattr(m, "get_classifier"):
        head = m.get_classifier()
    if not isinstance(head, nn.Module):
        raise UserError(
            f"{what} needs a model with a classifier head (classifier_name, get_classifier), "
            f"and {type(m).__name__} has none."
        )
    return head


def _head_prefix(model: nn.Module) -> str | None:
    """The state-dict prefix of the head: ``classifier_name + "."``, else that of the last Linear layer."""
    name = getattr(model, "classifier_name", None)
    if isinstance(name, str) and isinstance(getattr(model, name, None), nn.Module):
        return f"{name}."
    last = None
    for n, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = n
    return f"{last}." if last else None


def _last_stage(model: nn.Module) -> nn.Module:
    m = unwrap(model)
    stages = getattr(m, "stages", None)
    if not stages:
        raise UserError(f"model.unfreeze_after needs a model with stages, and {type(m).__name__} has none.")
    return stages[-1]


def check_transfer_interface(model: nn.Module, freeze: str, unfreeze_after: int, backbone_lr: float | None) -> None:
    """Fail early, in one sentence, when freezing or a backbone lr is asked of a model without the interface."""
    if freeze != "none":
        head_module(model, "model.freeze")
    if unfreeze_after:
        _last_stage(model)
    if backbone_lr is not None:
        head_module(model, "model.backbone_lr")


def trainable_modules(model: nn.Module, freeze: str, unfreeze_after: int, epoch: int) -> list[nn.Module] | None:
    """The modules that train in ``epoch`` (0-based): the head, plus the last stage from epoch
    ``unfreeze_after`` on; None when nothing is frozen."""
    if freeze == "none":
        return None
    mods = [head_module(model)]
    if unfreeze_after and epoch >= unfreeze_after:
        mods.append(_last_stage(model))
    return mods


def set_trainable(model: nn.Module, freeze: str, unfreeze_after: int, epoch: int) -> bool:
    """Set ``requires_grad`` for ``epoch``: only the trainable modules' parameters learn.

    Returns True when any flag changed (a DDP wrapper then has to be rebuilt).
    """
    mods = trainable_modules(model, freeze, unfreeze_after, epoch)
    if mods is None:
        return False
    train_ids = {id(p) for mod in mods for p in mod.parameters()}
    changed = False
    for p in unwrap(model).parameters():
        want = id(p) in train_ids
        if p.requires_grad != want:
            p.requires_grad_(want)
            changed = True
    return changed


def freeze_norm_stats(model: nn.Module, freeze: str, unfreeze_after: int, epoch: int) -> None:
    """Put the batch norms of the frozen part in eval mode, so their running statistics stay those
    of the pretrained weights; call it after ``model.train()``."""
    mods = trainable_modules(model, freeze, unfreeze_after, epoch)
    if mods is None:
        return
    live = {id(sub) for mod in mods for sub in mod.modules()}
    for mod in unwrap(model).modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and id(mod) not in live:
            mod.eval()


# ----------------------------------------------------------------------------- reading weights


def _first_line(e: BaseException) -> str:
    return ((str(e).strip().splitlines() or [type(e).__name__])[0])[:120]


def resolve_source(source: str | os.PathLike[str]) -> Path:
    """The weights file that ``source`` names: the file itself, a run's ``model.safetensors``, or the one
    weights file inside a folder (a local hub cache)."""
    p = Path(source).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise CheckpointError(f"Pretrained weights {p} do not exist.")
    if (p / "config.yaml").is_file():  # an archzoo run directory
        w = p / "model.safetensors"
        if not w.is_file():
            raise CheckpointError(f"Run {p} has no model.safetensors to start from; it may not have finished.")
        return w
    files = sorted(f for f in p.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())
    if not files:
        raise CheckpointError(f"Folder {p} holds no weights file ({', '.join('*' + s for s in WEIGHT_SUFFIXES)}).")
    if len(files) > 1:
        listed = ", ".join(str(f.relative_to(p)) for f in files[:6]) + (", ..." if len(files) > 6 else "")
        raise CheckpointError(f"Folder {p} holds several weights files ({listed}); name one in model.pretrained.")
    return files[0]


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors or torch file; a torch file is unpickled with ``weights_only=True`` only."""
    if path.suffix == ".safetensors":
        return load_weights_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"Pretrained file {path} holds pickled objects other than tensors, which archzoo refuses to load "
            "(torch.load with weights_only=True; nothing in it was run)."
        ) from None
    except Exception as e:  # noqa: BLE001 - a zip, EOF or format error all mean an unreadable file
        raise CheckpointError(f"Pretrained file {path} is truncated or corrupt ({_first_line(e)}).") from None
    for key in NESTED_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"Pretrained file {path} does not hold a state dict of tensors.")
    bad = next((k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)), None)
    if bad is not None:
        raise CheckpointError(
            f"Pretrained file {path} does not hold a state dict of tensors (its entry {bad!r} is a "
            f"{type(obj[bad]).__name__})."
        )
    return obj


def strip_prefixes(state: dict[str, Tensor], target: set[str], depth: int = 3) -> dict[str, Tensor]:
    """Remove ``module.``, ``_orig_mod.`` and ``model.`` prefixes (nested up to ``depth``, e.g.
    ``model._orig_mod.``) where that makes the most keys match ``target``; ties keep fewer removals."""

    def overlap(s: dict[str, Tensor]) -> int:
        return sum(k in target for k in s)

    best, best_score = state, overlap(state)
    level = [state]
    for _ in range(depth):
        nxt = []
        for s in level:
            for prefix in PREFIXES:
                if not any(k.startswith(prefix) for k in s):
                    continue
                cand = {k.removeprefix(prefix): v for k, v in s.items()}
                if len(cand) < len(s):  # two keys would collide
                    continue
                nxt.append(cand)
                if (score := overlap(cand)) > best_score:
                    best, best_score = cand, score
        level = nxt
    return best


def _shape(t: Tensor) -> str:
    return f"({', '.join(map(str, t.shape))})"


def load_pretrained(model: nn.Module, source: str | os.PathLike[str], quiet: bool = False) -> PretrainedReport:
    """Load pretrained weights into ``model``; the head starts fresh where its shapes differ.

    Args:
        model: the freshly built model (DDP / compile wrappers are looked through).
        source: a ``.safetensors`` file; a torch state-dict file (``.pt``, ``.pth``, ``.bin``), also a
            checkpoint dict holding it under ``"state_dict"`` or ``"model"``; an archzoo run directory
            (its ``model.safetensors``); or a folder holding exactly one such file (a local hub cache).
        quiet: do not print the one-line report on stderr.

    Raises:
        CheckpointError: the file is missing, corrupt, holds pickled objects other than tensors, or any
            tensor outside the head is missing, unexpected or of another shape than in the model.
    """
    path = resolve_source(source)
    m = unwrap(model)
    target = m.state_dict()
    state = strip_prefixes(read_state_dict(path), set(target))
    head = _head_prefix(m)

    def in_head(k: str) -> bool:
        return head is not None and k.startswith(head)

    merged: dict[str, Tensor] = {}
    fresh: list[str] = []
    for k, t in target.items():
        v = state.get(k)
        if v is not None and v.shape == t.shape:
            merged[k] = v
        elif in_head(k):
            fresh.append(k)  # a new head for this dataset's classes
        elif v is not None:
            raise CheckpointError(
                f"Pretrained weights {path} do not fit the model: {k} has shape {_shape(v)} in the file "
                f"and {_shape(t)} in the model."
            )
        elif k.endswith("num_batches_tracked"):
            continue  # older state dicts lack this counter; the model keeps its own
        else:
            raise CheckpointError(
                f"Pretrained weights {path} do not fit the model: the file has no {k} (shape {_shape(t)} in the model)."
            )
    unexpected = next((k for k in state if k not in target and not in_head(k)), None)
    if unexpected is not None:
        raise CheckpointError(
            f"Pretrained weights {path} do not fit the model: the file's {unexpected} "
            f"(shape {_shape(state[unexpected])}) is not in the model."
        )
    m.load_state_dict({**target, **merged}, strict=True)
    linears = [mod for n, mod in m.named_modules() if isinstance(mod, nn.Linear) and in_head(f"{n}.")]
    classes = linears[-1].out_features if linears else None
    report = PretrainedReport(path, len(merged), tuple(fresh), classes)
    if not quiet and os.environ.get("RANK", "0") == "0":
        msg = f"pretrained: loaded {len(merged)} tensors"
        if fresh:
            msg += f", new head for {classes} classes" if classes is not None else ", new head"
        print(msg, file=sys.stderr)
    return report
