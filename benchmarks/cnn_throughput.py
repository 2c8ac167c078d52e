"""Training throughput of ResNet-18 (small stem, 28×28×1) and its achieved FLOP rate.

In one run it measures, on this machine:
  * the fp32 matmul peak: the best GFLOP/s of large square matmuls;
  * training images/s of ResNet-18 (small stem) at the given batch, in NCHW, in
    channels_last, and under ``torch.compile`` when it works here;
  * achieved GFLOP/s = 3 × forward FLOPs × images/s (backward ≈ 2× forward),
    with forward FLOPs counted by ``torch.utils.flop_counter``, as a fraction of the peak.
Target (issue 3): ≥ 40% of the matmul peak. Writes ``results/cnn_throughput.json``.

Usage: ``python benchmarks/cnn_throughput.py [--batch 256] [--steps 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import matmul_peak, write_result  # noqa: E402
from archzoo.registry import create_model  # noqa: E402


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops()


def train_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile on CPU)")
    a = p.parse_args()
    torch.manual_seed(0)
    peak = matmul_peak()
    x = torch.randn(a.batch, 1, 28, 28)
    y = torch.randint(0, 10, (a.batch,))
    model = create_model("resnet18", num_classes=10, in_channels=1, stem="small").train()
    flops = forward_flops(model, x[:1]) * 1.0
    rows = []
    variants = [("nchw", False, False), ("channels_last", True, False)]
    if a.compile:
        variants.append(("channels_last+compile", True, True))
    for name, cl, comp in variants:
        m = create_model("resnet18", num_classes=10, in_channels=1, stem="small").train()
        xx = x
        if cl:
            m = m.to(memory_format=torch.channels_last)
            xx = x.contiguous(memory_format=torch.channels_last)
        if comp:
            m = torch.compile(m)
        try:
            ips = train_rate(m, xx, y, a.steps)
        except Exception as e:  # noqa: BLE001 - report a variant that cannot run here
            rows.append({"variant": name, "error": str(e).splitlines()[0][:200]})
            continue
        achieved = 3 * flops * ips / 1e9
        rows.append(
            {
                "variant": name,
                "images_per_s": round(ips, 1),
                "gflops": round(achieved, 1),
                "fraction_of_peak": round(achieved / peak, 3),
            }
        )
        print(rows[-1], flush=True)
    best = max((r for r in rows if "fraction_of_peak" in r), key=lambda r: r["fraction_of_peak"])
    write_result(
        "cnn_throughput",
        {
            "summary": f"ResNet-18 small stem, batch {a.batch}, training img/s: "
            + ", ".join(
                f"{r['variant']} {r['images_per_s']}" if "images_per_s" in r else f"{r['variant']} failed" for r in rows
            )
            + f"; best {best['variant']} {best['gflops']} GFLOP/s of a {peak:.0f} GFLOP/s fp32 matmul peak",
            "value": f"{100 * best['fraction_of_peak']:.0f}% of peak",
            "target": "≥ 40% of peak",
            "meets_target": best["fraction_of_peak"] >= 0.40,
            "matmul_peak_gflops": round(peak, 1),
            "forward_gflop_per_image": round(flops / 1e9, 4),
            "batch": a.batch,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
