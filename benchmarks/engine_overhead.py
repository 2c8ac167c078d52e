"""archzoo's training-step time against a raw PyTorch loop: same model, data, batch, optimizer.

Both loops run in this process on the same in-memory Fashion-MNIST tensors
(augmentation off, fp32), alternating raw/archzoo several times; the figure is
the ratio of median per-step times. archzoo's time covers its whole loop body:
loader, task step, step context (accumulation/clipping bookkeeping),
metric sums, logging every ``log_every`` steps and progress — everything but
the end-of-epoch evaluation, which the raw loop does not do. Target: ≤ 1.05.

The token-stream case (``python-lstm``: a character LSTM under truncated BPTT
over 32 parallel streams of the memory-mapped corpus) is timed against the raw
loop a tutorial writes for it: the same memmap cut into the same streams, the
same model, hidden state carried and detached between batches, cross-entropy
over every token, gradient clipping at the recipe's norm and AdamW.

Usage: ``python benchmarks/engine_overhead.py [--data-dir D] [--steps 60] [--repeats 3]``
(without Fashion-MNIST it falls back to digits).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import synchronizer, write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.data.splits import epoch_generator  # noqa: E402
from archzoo.engine.builders import build_model  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402


def raw_loop(trainer: Trainer, steps: int, seed: int) -> float:
    """The loop every tutorial writes, on the same tensors; returns seconds per step."""
    torch.manual_seed(seed)
    dev = trainer.device
    sync = synchronizer(dev)
    model = build_model(trainer.cfg, trainer.info).to(dev)
    if trainer.cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ocfg = trainer.cfg.optim.for_slot("main")
    opt = torch.optim.AdamW(model.parameters(), lr=ocfg.lr, weight_decay=ocfg.weight_decay)
    if trainer.info.get("kind") == "text":
        return raw_lm_loop(trainer, model, opt, steps, sync)
    x_all, y_all = trainer.data.train.tensors[:2]
    bs = trainer.cfg.data.train_batch
    order = torch.randperm(len(x_all), generator=epoch_generator(seed, 0)).to(x_all.device)
    model.train()
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            sync()
            t0 = time.perf_counter()  # the first step warms up allocators
        idx = order[i * bs : (i + 1) * bs]
        x, y = x_all[idx], y_all[idx]
        if trainer.cfg.model.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y, label_smoothing=trainer.task.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return (time.perf_counter() - t0) / steps


def raw_lm_loop(trainer: Trainer, model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, sync) -> float:
    """Truncated BPTT as tutorials write it: B contiguous streams of the corpus, state carried and detached."""
    split = trainer.data.train
    tokens, t, b = split.tokens, split.block_size, trainer.cfg.data.train_batch
    per_stream = len(tokens) // b
    streams = np.asarray(tokens[: per_stream * b]).reshape(b, per_stream)  # (B, L): row r is stream r
    clip = trainer.cfg.train.grad_clip
    vocab = trainer.info["vocab_size"]
    model.train()
    state = None
    t0 = 0.0
    for i in range(steps + 1):
        if i == 1:
            sync()
            t0 = time.perf_counter()
        chunk = torch.from_numpy(streams[:, i * t : (i + 1) * t + 1].astype(np.int64))
        x, y = chunk[:, :-1], chunk[:, 1:]
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    sync()
    return (time.perf_counter() - t0) / steps


def archzoo_loop(recipe: str, overrides: list[str], data_dir: str | None, steps: int, tmp: Path) -> float:
    cfg = load_config(recipe, None, [*overrides, f"train.max_steps={steps + 1}", f"log.dir={tmp}"])
    trainer = Trainer(cfg, data_dir=data_dir)
    stamps: list[float] = []
    step_fn = trainer.task.training_step

    sync = synchronizer(trainer.device)

    def timed(*a, **k):  # records when each step starts; adds one perf_counter call per step
        if len(stamps) == 1:
            sync()  # the clock starts once the warm-up step has run, as in raw_loop
        stamps.append(time.perf_counter())
        return step_fn(*a, **k)

    trainer.task.training_step = timed  # type: ignore[method-assign]
    end_epoch = trainer._end_epoch

    def stop_clock(*a, **k):
        sync()
        stamps.append(time.perf_counter())
        return end_epoch(*a, **k)

    trainer._end_epoch = stop_clock  # type: ignore[method-assign]
    trainer.fit()
    # stamps[1] .. stamps[-1]: steps 2..N+1 plus the loop bookkeeping after each.
    return (stamps[-1] - stamps[1]) / steps, trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--recipes", nargs="+", default=["fashion-cnn", "fashion-mlp", "python-lstm"])
    a = p.parse_args()
    tmp = Path("runs/benchmarks/overhead")
    common = ["log.progress=none", "log.plots=false", "train.epochs=1"]
    rows = []
    for recipe in a.recipes:
        raw_times, az_times = [], []
        trainer = None
        for _ in range(a.repeats):
            extra = [] if recipe == "python-lstm" else ["data.augment={}"]  # the token stream has no augmentation
            az, trainer = archzoo_loop(recipe, [*common, *extra], a.data_dir, a.steps, tmp)
            az_times.append(az)
            raw_times.append(raw_loop(trainer, a.steps, trainer.cfg.train.seed))
        raw, az = statistics.median(raw_times), statistics.median(az_times)
        row = {
            "recipe": recipe,
            "model": trainer.cfg.model.name,
            "batch_size": trainer.cfg.data.train_batch,
            "steps": a.steps,
            "repeats": a.repeats,
            "raw_ms_per_step": round(raw * 1e3, 3),
            "archzoo_ms_per_step": round(az * 1e3, 3),
            "ratio": round(az / raw, 4),
            "raw_all_ms": [round(t * 1e3, 3) for t in raw_times],
            "archzoo_all_ms": [round(t * 1e3, 3) for t in az_times],
        }
        rows.append(row)
        print(
            f"{recipe}: raw {row['raw_ms_per_step']} ms/step, archzoo {row['archzoo_ms_per_step']} ms/step, ratio {row['ratio']}"
        )
    worst = max(r["ratio"] for r in rows)
    write_result("engine_overhead", {"target": 1.05, "ratio": worst, "meets_target": worst <= 1.05, "rows": rows})


if __name__ == "__main__":
    main()
