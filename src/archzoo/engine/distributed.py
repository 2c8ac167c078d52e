"""Distributed data parallel set-up from torchrun's environment.

``torchrun --nproc_per_node=N -m archzoo train RECIPE`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` then joins the
process group (NCCL on CUDA, gloo on CPU). Rank 0 alone logs and checkpoints.

A rank that fails ends its process at once with a non-zero status (:func:`fail_rank`);
torchrun sees it exit, stops the other ranks (SIGTERM, then SIGKILL after its grace
period) and exits non-zero itself. A rank waiting in a collective on the failed one gets
gloo's "connection closed" error as soon as the failed process is gone, so no rank waits
for the process group's timeout (see docs/reliability.md).
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group if torchrun started us; a no-op in a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world=world, local_rank=local)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Send a picklable object from rank 0 to all ranks (used for the run directory name)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj``, in rank order, on rank 0 (other ranks get their own alone)."""
    if not info.enabled:
        return [obj]
    out: list[object] | None = [None] * info.world if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out if out is not None else [obj]


def shutdown(info: DistInfo) -> None:
    """Leave the process group together (rank 0 still writes and prints after the others are done).

    This does not by itself stop gloo aborting a rank at interpreter exit; ``archzoo train``
    therefore leaves a torchrun process with ``os._exit`` after this (see ``cli.cmd_train``)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# gloo's errors in a collective whose peer process is gone ("closed" when the peer shut its socket,
# "reset" when the kernel dropped it, a read or write error on the pair's socket).
_PEER_GONE = re.compile(
    r"Connection (closed|reset) by peer|remote worker crashing|Broken pipe|(Read|Write) error \[", re.IGNORECASE
)
# How long a rank whose peer is gone waits before it exits itself. torchrun dates a failure without
# an error file to the whole second it saw it and names the earliest as the root cause, the lowest
# local rank on a tie; a rank that exited at once on its peer's failure could therefore be named
# instead of the rank that raised. Waiting lets torchrun see the first failure alone and stop this
# rank with SIGTERM; if nothing stops it (no torchrun), it still exits non-zero after the wait.
PEER_GRACE_S = 10.0


def fail_rank(info: DistInfo, e: BaseException, user_error: bool) -> NoReturn:
    """Print this rank's error in one sentence (a traceback before it unless it is a user error) and
    leave with a non-zero status: 2 for a user error, 130 for an interrupt, else 1.

    A rank whose collective lost its peer prints only that another rank failed first and waits up to
    :data:`PEER_GRACE_S` for torchrun to stop it, so torchrun names the rank that failed first.
    ``os._exit`` skips interpreter finalisation, where gloo's threads can abort or hang a process
    whose peers are gone; torchrun then reports this rank's status and stops the others.
    """
    code = 2 if user_error else 130 if isinstance(e, KeyboardInterrupt) else 1
    first = (str(e).strip().splitlines() or [""])[0]
    # A collective that lost its peer: the error is the other rank's, whose traceback is printed there.
    peer = not user_error and bool(_PEER_GONE.search(first))
    if not (user_error or peer or isinstance(e, KeyboardInterrupt)):
        traceback.print_exception(e)
    why = "another rank failed first" if peer else f"{type(e).__name__}: {first}" if not user_error else first
    print(
        f"archzoo: error: rank {info.rank} of {info.world} failed ({why}); it exits with status {code}, "
        "and torchrun stops the other ranks.",
        file=sys.stderr,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    if peer:
        time.sleep(PEER_GRACE_S)
    os._exit(code)
