"""Recurrent throughput: the LSTM language model through the engine against a raw loop, and fused against cells.

(a) Tokens per second of ``python-lstm`` training (a character LSTM under truncated BPTT
over 32 parallel streams) through ``archzoo.engine.trainer.Trainer`` against the raw loop
a tutorial writes for it (``engine_overhead.raw_lm_loop``: the same memmap cut into the
same streams, the same model, state carried and detached, clipping and AdamW), alternating
the two ``--repeats`` times; the figure is the ratio of median tokens/s. Target: ≥ 0.95.

(b) Tokens per second of one LSTM layer's forward and backward at the recipe's size
(batch 32, 64 steps, 64 inputs, 128 hidden): torch's fused ``nn.LSTM`` against the
written-out cells of ``archzoo.layers.recurrent.Recurrent`` with the same weights. The
cells pay one Python step (a matmul and a few element-wise kernels) per time step; the
figure says what the from-scratch form costs, and why recipes use the fused one.

Usage: ``python benchmarks/rnn_throughput.py [--steps 60] [--repeats 3] [--iters 20] [--threads N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import synchronizer, write_result  # noqa: E402
from archzoo.layers.recurrent import Recurrent  # noqa: E402
from engine_overhead import archzoo_loop, raw_loop  # noqa: E402

TARGET = 0.95


def engine_vs_raw(steps: int, repeats: int, data_dir: str | None, threads: int) -> dict:
    """(a): median tokens/s of the engine's loop and of the raw loop on python-lstm."""
    tmp = Path("runs/benchmarks/rnn_throughput")
    common = ["log.progress=none", "log.plots=false", "train.epochs=1"]
    if threads:
        common.append(f"train.threads={threads}")
    raw_times, az_times = [], []
    trainer = None
    for _ in range(repeats):
        az, trainer = archzoo_loop("python-lstm", common, data_dir, steps, tmp)
        az_times.append(az)
        raw_times.append(raw_loop(trainer, steps, trainer.cfg.train.seed))
    tokens = trainer.cfg.data.train_batch * trainer.data.train.block_size  # per step
    raw, az = statistics.median(raw_times), statistics.median(az_times)
    return {
        "recipe": "python-lstm",
        "model": trainer.cfg.model.name,
        "batch_size": trainer.cfg.data.train_batch,
        "block_size": trainer.data.train.block_size,
        "steps": steps,
        "repeats": repeats,
        "raw_tokens_per_s": round(tokens / raw),
        "archzoo_tokens_per_s": round(tokens / az),
        "ratio": round(raw / az, 4),
        "raw_all_ms": [round(t * 1e3, 3) for t in raw_times],
        "archzoo_all_ms": [round(t * 1e3, 3) for t in az_times],
    }


def fused_vs_cells(batch: int, steps: int, inputs: int, hidden: int, iters: int, repeats: int) -> dict:
    """(b): median tokens/s of forward + backward of nn.LSTM and of Recurrent("lstm") with its weights."""
    torch.manual_seed(0)
    fused = torch.nn.LSTM(inputs, hidden, batch_first=True)
    cells = Recurrent("lstm", inputs, hidden)
    cells.load_state_dict(fused.state_dict())
    x = torch.randn(batch, steps, inputs)
    sync = synchronizer(x.device)

    def timed(m: torch.nn.Module) -> float:
        for i in range(iters + 1):
            if i == 1:
                sync()
                t0 = time.perf_counter()  # the first pass warms up allocators
            m.zero_grad(set_to_none=True)
            out, (h, c) = m(x)
            (out.square().mean() + h.sum() + c.sum()).backward()
        sync()
        return (time.perf_counter() - t0) / iters

    fused_times, cells_times = [], []
    for _ in range(repeats):
        fused_times.append(timed(fused))
        cells_times.append(timed(cells))
    tokens = batch * steps
    f, c = statistics.median(fused_times), statistics.median(cells_times)
    return {
        "batch_size": batch,
        "steps": steps,
        "input_size": inputs,
        "hidden_size": hidden,
        "iters": iters,
        "repeats": repeats,
        "fused_tokens_per_s": round(tokens / f),
        "cells_tokens_per_s": round(tokens / c),
        "cells_over_fused": round(f / c, 4),
        "fused_all_ms": [round(t * 1e3, 3) for t in fused_times],
        "cells_all_ms": [round(t * 1e3, 3) for t in cells_times],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir")
    p.add_argument("--steps", type=int, default=60, help="training steps timed per repeat in (a)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", type=int, default=20, help="forward+backward passes timed per repeat in (b)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    engine = engine_vs_raw(a.steps, a.repeats, a.data_dir, a.threads)
    print(
        f"python-lstm: archzoo {engine['archzoo_tokens_per_s']} tokens/s, raw {engine['raw_tokens_per_s']} tokens/s, "
        f"ratio {engine['ratio']}"
    )
    layer = fused_vs_cells(engine["batch_size"], engine["block_size"], 64, 128, a.iters, a.repeats)
    print(
        f"LSTM layer fwd+bwd: fused {layer['fused_tokens_per_s']} tokens/s, cells {layer['cells_tokens_per_s']} "
        f"tokens/s ({layer['cells_over_fused']}x)"
    )
    write_result(
        "rnn_throughput",
        {
            "recipe": "python-lstm",
            "target": TARGET,
            "ratio": engine["ratio"],
            "meets_target": engine["ratio"] >= TARGET,
            "engine": engine,
            "layer": layer,
        },
    )


if __name__ == "__main__":
    main()
