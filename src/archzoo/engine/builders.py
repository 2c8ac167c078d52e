"""Builders shared by training and by opening a finished run: device, seeds, data, model, task.

The Trainer (:mod:`archzoo.engine.trainer`) and the light :class:`~archzoo.engine.run.Run`
build through these functions alone, so a run opened for evaluation gets the
same model and task as the training that wrote it, without optimizers, process
groups or precision probes.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from archzoo.config import Config
from archzoo.data.splits import DataBundle, Split
from archzoo.errors import UserError
from archzoo.registry import DATASETS, MODELS, TASKS, _check_kwargs
from archzoo.tasks.base import Task

INFO_FILE = "info.json"  # the data's facts a run's model and task are built from


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name} was asked for, but CUDA is not available on this machine.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("train.device=mps was asked for, but MPS is not available on this machine.")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        # Let cuDNN time its convolution algorithms once per shape and keep the fastest.
        torch.backends.cudnn.benchmark = True


def accepted(fn: Any) -> set[str]:
    """The keyword names a builder takes (empty when it has no inspectable signature)."""
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


# Generic data options and the Split attribute that says a kind honours them.
_SPLIT_OPTIONS = ("batch_size", "eval_batch_size", "on_device")


def build_data(cfg: Config, data_dir: str | None = None) -> DataBundle:
    """Build the configured dataset; each generic option acts on it or is refused in one sentence.

    ``val_fraction``, ``augment`` and ``seed`` go to the builder, which must accept the ones set;
    ``batch_size``, ``eval_batch_size`` and ``on_device`` must be among the split kind's ``options``.
    """
    fn = DATASETS.get(cfg.data.name)
    takes = accepted(fn)
    name = cfg.data.name
    if cfg.data.augment and "augment" not in takes:
        raise UserError(f"Dataset '{name}' does not support data.augment.")
    if cfg.data.val_fraction is not None and "val_fraction" not in takes:
        raise UserError(f"Dataset '{name}' has a fixed validation split; data.val_fraction does not apply to it.")
    generic = {
        "data_dir": cfg.data.dir or data_dir,
        "val_fraction": cfg.data.val_fraction,
        "seed": cfg.train.seed,
        "augment": dict(cfg.data.augment) or None,
    }
    kwargs = {k: v for k, v in generic.items() if k in takes and v is not None}
    _check_kwargs(fn, cfg.data.args, f"dataset '{name}'")
    kwargs.update(cfg.data.args)
    bundle = fn(**kwargs)
    if not isinstance(bundle, DataBundle):
        raise TypeError(f"dataset builder '{name}' must return a DataBundle")
    check_split_options(cfg, bundle.train, name)
    return bundle


def check_split_options(cfg: Config, split: Split, dataset: str) -> None:
    """Refuse a generic batching option the split kind cannot honour."""
    options = getattr(split, "options", frozenset(_SPLIT_OPTIONS))
    kind = type(split).__name__
    set_ = {
        "batch_size": cfg.data.batch_size is not None,
        "eval_batch_size": cfg.data.eval_batch_size is not None,
        "on_device": not cfg.data.on_device,  # the default is True; false asks to keep the data on the host
    }
    for opt, is_set in set_.items():
        if is_set and opt not in options:
            raise UserError(f"Dataset '{dataset}' is a {kind}, which does not take data.{opt}.")


def build_model(cfg: Config, info: dict[str, Any], pretrained: bool = True) -> nn.Module:
    """Build the configured model; every ``info`` key the builder accepts is passed unless set in model.args.

    ``model.pretrained`` weights are loaded unless ``pretrained`` is False (a resumed run or a
    finished run's weights replace them anyway). ``model.grad_checkpointing`` calls the model's
    ``set_grad_checkpointing(True)``; a model without one refuses it.
    """
    fn = MODELS.get(cfg.model.name)
    takes = accepted(fn)
    kwargs = {k: v for k, v in info.items() if k in takes}
    kwargs.update(cfg.model.args)
    _check_kwargs(fn, kwargs, f"model '{cfg.model.name}'")
    model = fn(**kwargs)
    from archzoo.layers.init import init_weights

    init_weights(model, cfg.model.init)
    if cfg.model.pretrained and pretrained:
        from archzoo.engine.pretrained import load_pretrained

        load_pretrained(model, cfg.model.pretrained)
    if cfg.model.grad_checkpointing:
        if not callable(getattr(model, "set_grad_checkpointing", None)):
            raise UserError(
                f"Model '{cfg.model.name}' does not support model.grad_checkpointing; "
                "the ResNets, the Transformer models (gpt, gpt_seq2seq, transformer, bert, vit) and the U-Net do."
            )
        model.set_grad_checkpointing(True)
    return model


def build_task(cfg: Config) -> Task:
    task = TASKS.create(cfg.task.name, **cfg.task.args)
    if cfg.train.monitor:
        task.monitor = cfg.train.monitor
    if cfg.train.mode:
        task.mode = cfg.train.mode
    return task


# ----------------------------------------------------------------------------- the data's facts on disk


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(type(value).__name__)


# An info value that is an archzoo object with ``save(path)`` and a classmethod ``load(path)`` (a
# tokenizer) is saved beside info.json as ``<key>.json`` and named there by this marker.
SAVED_OBJECT = "__archzoo_saved__"


def save_info(info: dict[str, Any], run_dir: Path) -> None:
    """Write ``info`` to ``run_dir/info.json`` (atomically): JSON values as they are, and archzoo objects
    that save themselves (a tokenizer) into files of their own, reloaded by :func:`load_info`.

    Anything else (a graph, a tensor dataset) is left out: the data rebuilds it.
    """
    out: dict[str, Any] = {}
    for k, v in info.items():
        try:
            out[k] = _jsonable(v)
            continue
        except TypeError:
            pass
        cls = type(v)
        if cls.__module__.startswith("archzoo.") and callable(getattr(v, "save", None)) and hasattr(cls, "load"):
            name = f"{k}.json"
            v.save(run_dir / name)
            out[k] = {SAVED_OBJECT: f"{cls.__module__}:{cls.__qualname__}", "file": name}
    tmp = run_dir / f".{INFO_FILE}.tmp"
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, run_dir / INFO_FILE)


def load_info(run_dir: Path) -> dict[str, Any] | None:
    """The ``info`` a run was trained with, or None for a run written before info.json existed."""
    p = run_dir / INFO_FILE
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{p} is not readable JSON ({e}).") from None
    if not isinstance(info, dict):
        raise UserError(f"{p} must hold a JSON object.")
    for k, v in list(info.items()):
        if isinstance(v, dict) and SAVED_OBJECT in v:
            info[k] = _load_saved(run_dir, k, v)
    return info


def _load_saved(run_dir: Path, key: str, entry: dict[str, Any]) -> Any:
    """An object :func:`save_info` wrote to a file of its own; only archzoo classes are loaded."""
    import importlib

    from archzoo.data.tokenizers import Tokenizer

    module, _, qualname = str(entry[SAVED_OBJECT]).partition(":")
    if not module.startswith("archzoo.") or "." in qualname:
        raise UserError(f"{run_dir / INFO_FILE} names '{module}:{qualname}' for {key}, which is not an archzoo class.")
    try:
        cls = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        raise UserError(
            f"{run_dir / INFO_FILE} names {module}.{qualname} for {key}, which this archzoo lacks."
        ) from None
    # Only the kinds save_info writes (tokenizers, read from JSON): not any archzoo attribute with a load().
    if not (isinstance(cls, type) and issubclass(cls, Tokenizer)):
        raise UserError(f"{run_dir / INFO_FILE} names {module}.{qualname} for {key}, which is not a tokenizer class.")
    name = str(entry.get("file", f"{key}.json"))
    if Path(name).name != name or name.startswith("."):
        raise UserError(f"{run_dir / INFO_FILE} names the file {name!r} for {key}; it must be a file in the run.")
    path = run_dir / name
    if not path.is_file():
        raise UserError(f"Run {run_dir} lacks {path.name}, which holds its {key}.")
    return cls.load(path)
