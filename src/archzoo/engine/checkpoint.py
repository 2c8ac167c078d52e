"""Checkpoints written atomically: weights in safetensors, loop state for ``weights_only`` loading.

A full checkpoint is a directory ``checkpoints/<tag>/`` with ``model.safetensors``
and ``state.pt``. It is written under a temporary name, every file is fsynced,
the directory is renamed into place, and only then the pointer file
``checkpoints/LAST`` is replaced (again temp file, fsync, rename). A kill at
any moment leaves ``LAST`` naming a complete checkpoint; the next save removes the
temporary files a killed process left behind.

A write that fails for lack of space (``ENOSPC``, or ``EFBIG`` past a file-size limit,
or ``EDQUOT``) removes its temporary files and raises :class:`DiskFullError`, one
sentence naming the last good checkpoint, which is left intact with ``LAST`` naming it.

Test hook: the environment variable ``ARCHZOO_FAULT=kill-at-write:K`` (or
``kill-at-fsync:K``) makes the process SIGKILL itself at the K-th write (or just before
the K-th fsync) of a checkpoint file: a full checkpoint's files, ``LAST``,
``best.safetensors`` and the final ``model.safetensors`` (and of their directories, for
fsyncs); see :mod:`archzoo.engine.faults`. Unset, it costs one cached ``None`` check per write.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from archzoo.engine import faults
from archzoo.errors import CheckpointError
from archzoo.utils import unwrap

WEIGHTS = "model.safetensors"
STATE = "state.pt"
POINTER = "LAST"


# Errors that mean the disk (or a file-size limit, or a quota) has no room for the write.
DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "the file would pass the file-size limit",
    errno.EDQUOT: "the disk quota is exceeded",
}


class DiskFullError(CheckpointError):
    """A checkpoint, weights or results file could not be written for lack of space; the last good one is kept."""


def disk_full_error(what: str, where: Path, e: OSError, ckpt_dir: Path, run_dir: Path | None = None) -> DiskFullError:
    """The one sentence for a write of ``what`` to ``where`` that failed with a disk-full ``e``."""
    run_dir = Path(run_dir) if run_dir is not None else Path(ckpt_dir).parent
    name = errno.errorcode.get(e.errno or 0, str(e.errno))
    last = latest_checkpoint(ckpt_dir)
    if last is not None:
        after = f"the last good checkpoint {last} is intact and `archzoo train --resume {run_dir}` continues from it"
    else:
        after = "no checkpoint was written before it; free some space and start the run again"
    return DiskFullError(
        f"Could not write {what} to {where}: {_REASONS.get(e.errno or 0, 'no space left')} ({name}); {after}."
    )


@contextlib.contextmanager
def disk_full_guard(what: str, where: Path, ckpt_dir: Path, run_dir: Path | None = None) -> Iterator[None]:
    """Turn a disk-full ``OSError`` inside into :class:`DiskFullError`, the one sentence above."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as e:
        if e.errno not in DISK_FULL:
            raise
        raise disk_full_error(what, where, e, ckpt_dir, run_dir) from None


def _first_line(e: BaseException) -> str:
    return ((str(e).splitlines() or [type(e).__name__])[0])[:120]


def _fsync_dir(path: Path, hooked: bool = True) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        if hooked:
            faults.fsync(fd, f"{path.name}/")
        else:
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, hooked: bool = True) -> None:
    """Write and fsync one file (through the fault hook when ``hooked``)."""
    with open(path, "wb") as f:
        if hooked:
            faults.write(f, data, f"{path.parent.name}/{path.name}")
            f.flush()
            faults.fsync(f.fileno(), f"{path.parent.name}/{path.name}")
        else:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def _tmp_name(name: str) -> str:
    return f".{name}.tmp{os.getpid()}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def remove_stale_temps(directory: Path) -> None:
    """Remove the temporary files and directories (``.NAME.tmpPID``) of writers that are gone."""
    own = f".tmp{os.getpid()}"
    with contextlib.suppress(OSError):
        for p in Path(directory).iterdir():
            if p.name.startswith(".") and ".tmp" in p.name and not p.name.endswith(own):
                _remove(p)


def atomic_write_bytes(path: Path, data: bytes, hooked: bool = False) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename (the temporary goes on failure).

    ``hooked``: the write counts for the ``ARCHZOO_FAULT`` kill hook (the pointer and weights files do).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(_tmp_name(path.name))
    try:
        _write_file(tmp, data, hooked)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent, hooked)


def state_dict_of(model: nn.Module) -> dict[str, Tensor]:
    """The model's tensors, unwrapped from DDP/compile, as contiguous copies (safetensors refuses shared storage)."""
    m = unwrap(model)
    return {k: v.detach().cpu().contiguous().clone() for k, v in m.state_dict().items()}


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    atomic_write_bytes(path, save(state_dict_of(model), metadata=metadata), hooked=True)


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
    remove_stale_temps(ckpt_dir)
    final = ckpt_dir / tag
    tmp = ckpt_dir / _tmp_name(tag)
    buf = io.BytesIO()
    torch.save(state, buf)
    files = [(WEIGHTS, save(state_dict_of(model))), (STATE, buf.getvalue())]
    files += [(name, save(tensors)) for name, tensors in (extra or {}).items()]
    renamed = False
    try:
        _remove(tmp)
        tmp.mkdir()
        for name, data in files:
            _write_file(tmp / name, data)
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        renamed = True
        _fsync_dir(ckpt_dir)
        atomic_write_bytes(ckpt_dir / POINTER, tag.encode(), hooked=True)
    except OSError as e:
        _remove(tmp)
        if renamed and latest_checkpoint(ckpt_dir) != final:
            _remove(final)  # complete, but LAST could not be pointed at it
        if e.errno in DISK_FULL:
            raise disk_full_error(f"checkpoint {tag}", ckpt_dir, e, ckpt_dir) from None
        raise
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
