"""Checkpoints written atomically: weights in safetensors, loop state for ``weights_only`` loading.

A full checkpoint is a directory ``checkpoints/<tag>/`` with ``model.safetensors``
and ``state.pt``. It is written under a temporary name, every file is fsynced,
the directory is renamed into place, and only then the pointer file
``checkpoints/LAST`` is replaced (again temp file, fsync, rename). A kill at
any moment leaves ``LAST`` naming a complete checkpoint.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from archzoo.errors import CheckpointError
from archzoo.utils import unwrap

WEIGHTS = "model.safetensors"
STATE = "state.pt"
POINTER = "LAST"


def _first_line(e: BaseException) -> str:
    return ((str(e).splitlines() or [type(e).__name__])[0])[:120]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def state_dict_of(model: nn.Module) -> dict[str, Tensor]:
    """The model's tensors, unwrapped from DDP/compile, as contiguous copies (safetensors refuses shared storage)."""
    m = unwrap(model)
    return {k: v.detach().cpu().contiguous().clone() for k, v in m.state_dict().items()}


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    atomic_write_bytes(path, save(state_dict_of(model), metadata=metadata))


def load_weights_file(path: Path) -> dict[str, Tensor]:
    """Read a safetensors file; a missing, truncated or corrupt file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} does not exist.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"Checkpoint file {path} is truncated or corrupt ({_first_line(e)}).") from None


def load_into(model: nn.Module, state: dict[str, Tensor], source: Path | str) -> None:
    m = unwrap(model)
    try:
        m.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = [line.strip() for line in str(e).splitlines() if line.strip()][1:2]
        detail = first[0] if first else _first_line(e)
        raise CheckpointError(f"Checkpoint {source} does not match the model ({detail}).") from None


def save_checkpoint(
    ckpt_dir: Path,
    tag: str,
    model: nn.Module,
    state: dict[str, Any],
    keep: int = 1,
    extra: dict[str, dict[str, Tensor]] | None = None,
) -> Path:
    """Write a full checkpoint ``ckpt_dir/tag`` and point ``LAST`` at it; keep the newest ``keep``.

    ``extra`` maps further safetensors file names to tensors written beside the weights
    (the averaged weights of ``train.ema_decay``).
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / tag
    tmp = ckpt_dir / f".{tag}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    buf = io.BytesIO()
    torch.save(state, buf)
    files = [(WEIGHTS, save(state_dict_of(model))), (STATE, buf.getvalue())]
    files += [(name, save(tensors)) for name, tensors in (extra or {}).items()]
    for name, data in files:
        with open(tmp / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(ckpt_dir)
    atomic_write_bytes(ckpt_dir / POINTER, tag.encode())
    # Drop older full checkpoints (never the one LAST names).
    olds = sorted(
        (p for p in ckpt_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != tag),
        key=lambda p: p.stat().st_mtime,
    )
    for p in olds[: max(0, len(olds) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    ptr = Path(ckpt_dir) / POINTER
    if not ptr.is_file():
        return None
    try:
        tag = ptr.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"Checkpoint pointer {ptr} is not readable text.") from None
    if not tag or Path(tag).name != tag or tag.startswith("."):
        raise CheckpointError(f"Checkpoint pointer {ptr} names {tag[:60]!r}, which is not a checkpoint in that folder.")
    path = Path(ckpt_dir) / tag
    return path if path.is_dir() else None


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a full checkpoint directory: (weights, loop state)."""
    path = Path(path)
    weights = load_weights_file(path / WEIGHTS)
    state_file = path / STATE
    if not state_file.is_file():
        raise CheckpointError(f"Checkpoint {path} has no {STATE}.")
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"Checkpoint file {state_file} is truncated or corrupt ({_first_line(e)}).") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"Checkpoint file {state_file} does not hold a state dict.")
    return weights, state


def load_extra_weights(path: Path, name: str) -> dict[str, Tensor] | None:
    """A further safetensors file of the full checkpoint ``path`` (see ``save_checkpoint``), or None if absent."""
    f = Path(path) / name
    return load_weights_file(f) if f.is_file() else None
