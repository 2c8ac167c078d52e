"""Distributed data parallel set-up from torchrun's environment.

``torchrun --nproc_per_node=N -m archzoo train RECIPE`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` then joins the
process group (NCCL on CUDA, gloo on CPU). Rank 0 alone logs and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
