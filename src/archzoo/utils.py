"""Small helpers shared across the package."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``28`` or ``(28, 28)`` -> ``(28, 28)``."""
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = (int(s) for s in image_size)
    return h, w


def downsampled_hw(image_size: int | Sequence[int], levels: int, what: str) -> tuple[int, int]:
    """The resolution after ``levels`` halvings; both sides must divide by ``2**levels``."""
    h, w = image_hw(image_size)
    f = 2**levels
    if h % f or w % f:
        raise UserError(f"{what} needs an image size divisible by {f}; got {h}x{w}.")
    return h // f, w // f


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str) -> Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``.

    A CPU generator can then seed samples of a model that lives on a GPU.
    """
    if generator is None:
        return torch.randn(*shape, device=device)
    return torch.randn(*shape, generator=generator, device=generator.device).to(device)


def parse_number(v: str) -> Any:
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.csv, numbers parsed, empty cells left out."""
    with open(path, newline="") as f:
        return [{k: parse_number(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------- across ranks
# Metrics are reduced across DDP ranks here and only here (torchmetrics does its own); a task
# calls these at compute, on every rank, and nothing else in a task touches torch.distributed.


def _ranks() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sum_across_ranks(t: Tensor) -> Tensor:
    """``t`` summed over the DDP ranks, in place (itself in one process)."""
    if _ranks() > 1:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_across_ranks(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank (``[obj]`` in one process)."""
    n = _ranks()
    if n == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * n
    dist.all_gather_object(out, obj)
    return out


def machine_facts(device: Any = None) -> dict[str, Any]:
    """What a run or a benchmark ran on: CPU model, cores, torch threads and version, Python, the
    1-minute load average (other work slows every figure), and the GPU when ``device`` is one (or, with
    no device given, when CUDA is present)."""
    import os
    import platform

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
    if cuda:
        info["gpu"] = torch.cuda.get_device_name(torch.device(device) if device is not None else 0)
    return info
