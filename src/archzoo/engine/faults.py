"""Fault injection for the reliability tests: the ``ARCHZOO_FAULT`` environment variable.

A test hook, not an option: nothing in a recipe or on the command line reaches it. The
variable is read once, at its first use in the process (so a process forked before it
was set, as the kill tests' launcher does, still sees it), and costs nothing when unset
beyond a cached ``None`` check at each checkpoint file write and at each optimizer step.

``kill-at-write:K``
    The K-th write of a checkpoint file in this process writes the first half of its bytes,
    flushes them, and the process SIGKILLs itself: a torn write. Counted, in the order they
    are written: the files of a full checkpoint (weights, loop state, averaged weights),
    the ``LAST`` pointer, ``best.safetensors`` and the final ``model.safetensors``.
``kill-at-fsync:K``
    The process SIGKILLs itself just before its K-th fsync of such a file or of the
    directory that holds it.
``raise-on-rank:R:step:S``
    The process of rank R (0 outside torchrun) raises ``RuntimeError`` when it reaches
    optimizer step S: a failing rank.

Before a kill the hook prints one line, ``ARCHZOO_FAULT: SIGKILL at ...``, on stderr, so
a test can tell a kill placed inside a write from one that came from outside.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from dataclasses import dataclass
from typing import IO

from archzoo.errors import UserError

ENV = "ARCHZOO_FAULT"
MARK = "ARCHZOO_FAULT: SIGKILL at"


@dataclass(frozen=True)
class Fault:
    kind: str  # kill-at-write, kill-at-fsync or raise-on-rank
    k: int = 0  # the write or fsync to die at (1-based)
    rank: int = 0
    step: int = 0


def parse(text: str) -> Fault | None:
    text = text.strip()
    if not text:
        return None
    m = re.fullmatch(r"(kill-at-write|kill-at-fsync):(\d+)", text)
    if m and int(m.group(2)) >= 1:
        return Fault(m.group(1), k=int(m.group(2)))
    m = re.fullmatch(r"raise-on-rank:(\d+):step:(\d+)", text)
    if m and int(m.group(2)) >= 1:
        return Fault("raise-on-rank", rank=int(m.group(1)), step=int(m.group(2)))
    raise UserError(
        f"{ENV} must be kill-at-write:K, kill-at-fsync:K or raise-on-rank:R:step:S (K, S >= 1), got '{text}'."
    )


_UNREAD = Fault("unread")
_fault: Fault | None = _UNREAD
_counts = {"write": 0, "fsync": 0}


def active() -> Fault | None:
    """The fault this process injects (read from the environment at the first call), or None."""
    global _fault
    if _fault is _UNREAD:
        _fault = parse(os.environ.get(ENV, ""))
    return _fault


def _die(what: str) -> None:
    sys.stderr.write(f"{MARK} {what}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def write(f: IO[bytes], data: bytes, name: str) -> None:
    """``f.write(data)``, unless this is the write ``kill-at-write`` dies at (half of it is written then)."""
    fault = active()
    if fault is not None and fault.kind == "kill-at-write":
        _counts["write"] += 1
        if _counts["write"] == fault.k:
            f.write(data[: len(data) // 2])
            f.flush()
            _die(f"write {fault.k} ({name}, {len(data) // 2} of {len(data)} bytes)")
    f.write(data)


def fsync(fd: int, name: str) -> None:
    """``os.fsync(fd)``, unless this is the fsync ``kill-at-fsync`` dies before."""
    fault = active()
    if fault is not None and fault.kind == "kill-at-fsync":
        _counts["fsync"] += 1
        if _counts["fsync"] == fault.k:
            _die(f"fsync {fault.k} ({name})")
    os.fsync(fd)


def raise_step(rank: int) -> int | None:
    """The optimizer step at which this rank raises (``raise-on-rank``), or None."""
    fault = active()
    if fault is not None and fault.kind == "raise-on-rank" and fault.rank == rank:
        return fault.step
    return None
