"""fp32 against bf16 autocast training steps on this machine's CPU (or GPU), same model and batch.

This is the measurement behind ``train.precision=auto``: on CPU the engine runs
the same probe on a real batch and keeps bf16 only when it is at least 10%
faster. Writes ``results/precision.json`` with median step times per recipe.

Usage: ``python benchmarks/precision.py [--data-dir D] [--recipes fashion-cnn fashion-mlp] [--steps 20]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402
from archzoo.tasks.base import to_device  # noqa: E402


def step_time(recipe: str, precision: str, data_dir: str | None, steps: int) -> float:
    cfg = load_config(recipe, None, [f"train.precision={precision}", "log.progress=none", "data.augment={}"])
    tr = Trainer(cfg, run_dir=Path("runs/benchmarks/precision") / f"{recipe}-{precision}", data_dir=data_dir)
    batch = to_device(next(tr.data.train.batches(cfg.data.train_batch, shuffle=True)), tr.device, tr.memory_format)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        tr.task.training_step(tr.net, batch, tr.ctx)
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir")
    p.add_argument("--recipes", nargs="+", default=["fashion-cnn", "fashion-mlp", "digits-cnn"])
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    rows = []
    for r in a.recipes:
        fp32 = step_time(r, "fp32", a.data_dir, a.steps)
        bf16 = step_time(r, "bf16", a.data_dir, a.steps)
        rows.append(
            {
                "recipe": r,
                "fp32_ms": round(fp32 * 1e3, 2),
                "bf16_ms": round(bf16 * 1e3, 2),
                "bf16_speedup": round(fp32 / bf16, 3),
            }
        )
        print(rows[-1])
    best = max(rows, key=lambda x: x["bf16_speedup"])
    summary = "bf16 autocast vs fp32 step time: " + "; ".join(f"{x['recipe']} {x['bf16_speedup']}×" for x in rows)
    write_result("precision", {"summary": summary, "value": f"best {best['bf16_speedup']}×", "rows": rows})


if __name__ == "__main__":
    main()
