"""GPT training throughput: tokens/s, achieved FLOP/s against the machine's fp32 matmul peak, and the engine against a raw loop.

Usage: ``python benchmarks/gpt_throughput.py [--threads 2] [--steps 8] [--repeats 3] [--batch 8]
[--data-dir D]``.

The model is archzoo's ``gpt`` at 6 layers, 6 heads, 384 wide, block 256 (about 10.7M
parameters) on tiny Shakespeare's characters, fp32, no dropout, AdamW. archzoo's side is the
``shakespeare-gpt`` recipe resized to it and trained by the engine (its whole loop body: the
random-window split, the task step, clipping, metric sums, logging); the raw side is the loop a
tutorial writes — forward, cross-entropy, backward, clipping, AdamW step — over the same model
and the same batches, taken from the recipe's split beforehand and kept in memory (so the raw
loop pays nothing for data). Both are timed per step after a warm-up step, alternating, and the
figure of each is the median over repeats.

The FLOPs of one training step (forward and backward) are counted by
``torch.utils.flop_counter.FlopCounterMode``; achieved FLOP/s is that count over archzoo's step
time, and its fraction of the machine's fp32 matmul peak (the best of several 2048² products at
the same thread count, measured before and after) is the utilisation. Targets: utilisation ≥ 40%
and archzoo's tokens/s ≥ 0.95× the raw loop's. Writes ``results/gpt_throughput.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import matmul_peak, write_result  # noqa: E402
from archzoo.engine.builders import build_model  # noqa: E402
from engine_overhead import archzoo_loop  # noqa: E402

SIZE = ["model.args.n_layer=6", "model.args.n_head=6", "model.args.n_embd=384", "model.args.dropout=0.0"]


def raw_loop(trainer, batches: list[tuple[torch.Tensor, torch.Tensor]], seed: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per step of the plain loop over ``batches`` (the first one warms up)."""
    torch.manual_seed(seed)
    model = build_model(trainer.cfg, trainer.info)
    ocfg = trainer.cfg.optim.for_slot("main")
    opt = torch.optim.AdamW(model.parameters(), lr=ocfg.lr, betas=tuple(ocfg.betas), weight_decay=ocfg.weight_decay)
    clip = trainer.cfg.train.grad_clip
    model.train()
    t0 = 0.0
    for i, (x, y) in enumerate(batches):
        if i == 1:
            t0 = time.perf_counter()
        logits, _ = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return (time.perf_counter() - t0) / (len(batches) - 1)


def step_flops(trainer, x: torch.Tensor, y: torch.Tensor) -> int:  # type: ignore[no-untyped-def]
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(trainer.cfg, trainer.info)
    counter = FlopCounterMode(display=False)
    with counter:
        logits, _ = model(x)
        F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    return int(counter.get_total_flops())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--data-dir")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    peak_before = matmul_peak()
    overrides = [
        *SIZE,
        f"data.args.block_size={a.block}",
        f"data.batch_size={a.batch}",
        "train.precision=fp32",
        f"train.threads={a.threads}",
        "train.epochs=1",
        "train.eval_every=0",
        "log.progress=none",
        "log.plots=false",
        "log.tensorboard=false",
    ]
    tmp = Path("runs/benchmarks/gpt_throughput")
    raw_times, az_times = [], []
    trainer = None
    for _ in range(a.repeats):
        az, trainer = archzoo_loop("shakespeare-gpt", overrides, a.data_dir, a.steps, tmp)
        az_times.append(az)
        split = trainer.data.train
        it = split.batches(a.batch, shuffle=True, seed=trainer.cfg.train.seed, epoch=0)
        batches = [(b[0], b[1]) for b, _ in zip(it, range(a.steps + 1), strict=False)]
        raw_times.append(raw_loop(trainer, batches, trainer.cfg.train.seed))
    assert trainer is not None
    peak_after = matmul_peak()
    x, y = batches[0]
    flops = step_flops(trainer, x, y)
    tokens = x.numel()
    raw, az = statistics.median(raw_times), statistics.median(az_times)
    peak = max(peak_before, peak_after)
    achieved = flops / az / 1e9
    util = achieved / peak
    ratio = raw / az  # archzoo's tokens/s over the raw loop's
    params = sum(p.numel() for p in build_model(trainer.cfg, trainer.info).parameters())
    meets = util >= 0.40 and ratio >= 0.95
    write_result(
        "gpt_throughput",
        {
            "recipe": "shakespeare-gpt",
            "overrides": overrides,
            "parameters": params,
            "tokens_per_step": tokens,
            "flops_per_step": flops,
            "raw_ms_per_step": [round(t * 1e3, 1) for t in raw_times],
            "archzoo_ms_per_step": [round(t * 1e3, 1) for t in az_times],
            "archzoo_tokens_per_s": round(tokens / az, 1),
            "raw_tokens_per_s": round(tokens / raw, 1),
            "achieved_gflops": round(achieved, 1),
            "matmul_peak_gflops": round(peak_before, 1),
            "matmul_peak_after_gflops": round(peak_after, 1),
            "utilisation": round(util, 3),
            "engine_vs_raw": round(ratio, 3),
            "value": f"{100 * util:.0f}% of peak, {ratio:.2f}× raw",
            "target": "≥ 40% of peak, ≥ 0.95× raw",
            "meets_target": meets,
            "summary": (
                f"GPT 6×6×384, block {a.block}, batch {a.batch} ({params / 1e6:.1f}M params, fp32, {a.threads} threads): "
                f"archzoo {tokens / az:,.0f} tokens/s, {achieved:.0f} GFLOP/s = {100 * util:.0f}% of the "
                f"{peak:.0f} GFLOP/s matmul peak; raw loop {tokens / raw:,.0f} tokens/s (archzoo {ratio:.2f}×); "
                f"median of {a.repeats} × {a.steps} steps"
            ),
        },
    )
    print(f"archzoo {tokens / az:.0f} tok/s, raw {tokens / raw:.0f} tok/s, {achieved:.0f} GFLOP/s of {peak:.0f}")


if __name__ == "__main__":
    main()
