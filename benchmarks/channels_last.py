"""NCHW against channels_last (NHWC) training steps for small CNNs, same weights, batch and optimizer.

``model.channels_last: true`` keeps 4-D activations in NHWC order, which
oneDNN (CPU) and cuDNN (GPU, with tensor cores) often run faster. This
measures it here: one forward, backward and AdamW step at batch 128 on 28 px
Fashion-MNIST-sized inputs, for ``convnet_small``, ``resnet20`` (small stem)
and ``mobilenet_v2`` (small stem, width 0.5 as in the fashion-mobilenet
recipe). The two layouts alternate, a few steps each, so that load on a shared
machine hits both alike; the figure is the median step time over the repeats.
Writes ``results/channels_last.json``.

Usage: ``python benchmarks/channels_last.py [--batch 128] [--repeats 5] [--steps 3] [--device cpu]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.registry import create_model  # noqa: E402

MODELS: dict[str, dict[str, Any]] = {
    "convnet_small": {},
    "resnet20": {"stem": "small"},
    "mobilenet_v2": {"stem": "small", "width_mult": 0.5},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    """Seconds per training step, averaged over ``n`` steps."""
    _sync(x.device)
    t0 = time.perf_counter()
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    _sync(x.device)
    return (time.perf_counter() - t0) / n


def measure(name: str, args: dict[str, Any], batch: int, repeats: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    nchw = create_model(name, in_channels=1, num_classes=10, **args).to(device).train()
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)  # type: ignore[call-arg]
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    runs = {
        "nchw": (nchw, torch.optim.AdamW(nchw.parameters(), lr=1e-3), x),
        "channels_last": (nhwc, torch.optim.AdamW(nhwc.parameters(), lr=1e-3), x_cl),
    }
    for m, opt, inp in runs.values():  # warm-up: allocator, oneDNN primitive caches, AdamW state
        _steps(m, opt, inp, y, 2)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, (m, opt, inp) in runs.items():
            times[k].append(_steps(m, opt, inp, y, steps))
    a, b = statistics.median(times["nchw"]), statistics.median(times["channels_last"])
    return {
        "model": name,
        "args": args,
        "input": [batch, 1, 28, 28],
        "parameters": sum(p.numel() for p in nchw.parameters()),
        "nchw_ms": round(a * 1e3, 2),
        "channels_last_ms": round(b * 1e3, 2),
        "speedup": round(a / b, 3),
        "repeats": repeats,
        "steps_per_repeat": steps,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="steps per layout per repeat")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    a = p.parse_args()
    device = torch.device(a.device)
    rows = []
    for name in a.models:
        rows.append(measure(name, MODELS[name], a.batch, a.repeats, a.steps, device))
        print(rows[-1], flush=True)
    summary = (
        f"channels_last vs NCHW training step (forward, backward, AdamW; batch {a.batch}, 28 px, {device.type}): "
        + "; ".join(f"{r['model']} {r['nchw_ms']} → {r['channels_last_ms']} ms ({r['speedup']}×)" for r in rows)
    )
    speedups = [r["speedup"] for r in rows]
    value = f"{min(speedups)}–{max(speedups)}× (>1: channels_last faster)"
    write_result("channels_last", {"summary": summary, "value": value, "rows": rows})


if __name__ == "__main__":
    main()
