"""Gradient checkpointing: training memory and step time with and without it, same model, same batch.

Two models, each trained with and without ``set_grad_checkpointing(True)`` (what
``model.grad_checkpointing=true`` calls), each case in a fresh subprocess so that its peak
memory is its own:

* ResNet-50 (bottleneck blocks (3, 4, 6, 3), the ``small`` stem: a 3x3 stride-1 convolution
  and no pool) on 32x32 RGB images, batch 64, 10 classes. No shipped recipe trains a
  ResNet-50; 32 px with the small stem is how the CIFAR-sized recipes (``cifar10-resnet``)
  build their ResNets.
* GPT, 12 layers, 6 heads, width 384, block 256, the 65-character vocabulary, dropout 0.1,
  batch 8 (random tokens; random weights cost the same as trained ones).

Each case runs one warm-up step and ``--steps`` timed steps (forward, backward, SGD step) at
learning rate 0, so the weights never move and every step sees the same weights and batch
(dropout reseeded per step): the losses and the last step's gradients of the two cases of a
model must agree, and their largest absolute difference is recorded. On CPU the memory is
the peak resident set size of the process (``ru_maxrss``) minus the resident set after the
model, its batch and the optimizer were built (both are recorded), measured twice: with
glibc's default allocator (the timed runs), which keeps freed blocks below its growing mmap
threshold in the heap so the resident set can stay above what the live tensors hold, and in
two more fresh processes (one step each) with ``MALLOC_MMAP_THRESHOLD_=65536``, where every
block of 64 KiB or more is unmapped when freed and the peak follows the live tensors; the
target is judged on the latter. On CUDA it is ``torch.cuda.max_memory_allocated`` minus the
memory allocated after building. Target: the checkpointed step needs at most half the
training memory of the plain one, on both models.

Usage: ``python benchmarks/grad_checkpointing.py [--steps 3] [--threads 1] [--device cpu]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe, machine, write_result  # noqa: E402

TARGET = 2.0  # plain training memory / checkpointed training memory, on each model
CASES: dict[str, dict[str, Any]] = {
    "resnet50": {"model": "resnet50", "args": {"num_classes": 10, "in_channels": 3, "stem": "small"}, "batch": 64,
                 "input": "32x32 RGB images, small stem"},
    "gpt12": {"model": "gpt", "args": {"vocab_size": 65, "block_size": 256, "n_layer": 12, "n_head": 6,
                                       "n_embd": 384, "dropout": 0.1}, "batch": 8, "input": "256 tokens"},
}  # fmt: skip


def _rss_mib() -> float:
    """The resident set size now, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def worker(case: str, checkpointing: bool, steps: int, device: str, grads_out: Path) -> dict[str, Any]:
    """One fresh process: build, train ``steps`` + 1 steps at lr 0, measure, save the last gradients."""
    from archzoo.registry import create_model

    spec = CASES[case]
    dev = torch.device(device)
    torch.manual_seed(0)
    model = create_model(spec["model"], **spec["args"]).to(dev).train()
    model.set_grad_checkpointing(checkpointing)
    gen = torch.Generator().manual_seed(1)
    b = spec["batch"]
    if case == "gpt12":
        tokens = torch.randint(0, 65, (b, 257), generator=gen).to(dev)
        x, y = tokens[:, :-1], tokens[:, 1:]  # (B, T) inputs and next-token targets

        def loss_fn() -> torch.Tensor:
            logits, _ = model(x)  # (B, T, V)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    else:
        x = torch.randn(b, 3, 32, 32, generator=gen).to(dev)
        y = torch.randint(0, 10, (b,), generator=gen).to(dev)

        def loss_fn() -> torch.Tensor:
            return F.cross_entropy(model(x), y)

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mib()
    base_peak = _peak_rss_mib()
    times, losses = [], []
    for i in range(steps + 1):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.manual_seed(100)  # the same dropout masks at every step and in both cases
        loss = loss_fn()
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
        if i < steps:  # the last step's gradients stay, to be compared across the two cases
            opt.zero_grad(set_to_none=True)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mib()
    torch.save({k: p.grad.detach().cpu() for k, p in model.named_parameters()}, grads_out)
    return {
        "case": case,
        "checkpointing": checkpointing,
        "parameters": sum(p.numel() for p in model.parameters()),
        "base_mib": round(base, 1),
        "base_peak_rss_mib": round(base_peak, 1),
        "peak_mib": round(peak, 1),
        "train_mib": round(peak - base, 1),
        "step_seconds": [round(t, 3) for t in times],
        "losses": losses,
    }


# glibc keeps freed blocks below its (growing) mmap threshold in the heap, so the resident set
# can stay above the memory the live tensors hold; with this threshold every block of 64 KiB or
# more is mapped on allocation and unmapped when freed, and the peak RSS follows the live tensors.
LIVE_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def run_case(
    case: str, checkpointing: bool, steps: int, threads: int, device: str, tmp: Path, live: bool = False
) -> dict[str, Any]:
    grads = tmp / f"{case}-{int(checkpointing)}-{int(live)}.pt"
    cmd = [sys.executable, __file__, "--worker", case, "--checkpointing", str(int(checkpointing)),
           "--steps", str(steps), "--threads", str(threads), "--device", device, "--grads", str(grads)]  # fmt: skip
    env = {**os.environ, **(LIVE_ENV if live else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{case} (checkpointing={checkpointing}) failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["grads_file"] = grads
    result["malloc_env"] = LIVE_ENV if live else {}
    what = "live" if live else "default allocator"
    print(f"{case} checkpointing={checkpointing} ({what}): {result['train_mib']} MiB, steps {result['step_seconds']} s")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    p.add_argument("--checkpointing", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--grads", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.worker:
        print(json.dumps(worker(a.worker, bool(a.checkpointing), a.steps, a.device, Path(a.grads))))
        return
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in a.cases:
            plain = run_case(case, False, a.steps, a.threads, a.device, Path(tmp))
            checked = run_case(case, True, a.steps, a.threads, a.device, Path(tmp))
            ga, gb = (torch.load(r.pop("grads_file"), weights_only=True) for r in (plain, checked))
            grad_diff = max(float((ga[k] - gb[k]).abs().max()) for k in ga)
            loss_diff = max(abs(u - v) for u, v in zip(plain["losses"], checked["losses"], strict=True))
            t_plain, t_ckpt = min(plain["step_seconds"]), min(checked["step_seconds"])
            row = {
                "input": CASES[case]["input"],
                "batch": CASES[case]["batch"],
                "model_args": CASES[case]["args"],
                "plain": plain,
                "checkpointed": checked,
                "memory_ratio_default_allocator": round(plain["train_mib"] / checked["train_mib"], 2),
                "step_time_ratio": round(t_ckpt / t_plain, 2),
                "max_abs_grad_diff": grad_diff,
                "max_abs_loss_diff": loss_diff,
            }
            if a.device == "cpu":  # the memory of the live tensors: one step each, in fresh processes again
                live = [run_case(case, c, 1, a.threads, a.device, Path(tmp), live=True) for c in (False, True)]
                for r in live:
                    r.pop("grads_file")
                row["plain_live"], row["checkpointed_live"] = live
                row["memory_ratio"] = round(live[0]["train_mib"] / live[1]["train_mib"], 2)
            else:
                row["memory_ratio"] = row["memory_ratio_default_allocator"]
            rows[case] = row
    m = machine()
    worst = min(r["memory_ratio"] for r in rows.values())
    cpu = a.device == "cpu"
    what = (
        "peak RSS above the built model, large blocks unmapped when freed (MALLOC_MMAP_THRESHOLD_=65536)"
        if cpu
        else "peak CUDA memory allocated above the built model"
    )

    def part(case: str, r: dict[str, Any]) -> str:
        live = (r["plain_live"], r["checkpointed_live"]) if cpu else (r["plain"], r["checkpointed"])
        text = (
            f"{case} (batch {r['batch']}, {r['input']}): {live[0]['train_mib']:.0f} MiB plain vs "
            f"{live[1]['train_mib']:.0f} MiB checkpointed ({r['memory_ratio']:.2f}x less)"
        )
        if cpu:
            text += (
                f" [with glibc's default allocator {r['plain']['train_mib']:.0f} vs "
                f"{r['checkpointed']['train_mib']:.0f} MiB, {r['memory_ratio_default_allocator']:.2f}x]"
            )
        return text + (
            f", step {min(r['plain']['step_seconds']):.2f} s vs {min(r['checkpointed']['step_seconds']):.2f} s "
            f"({r['step_time_ratio']:.2f}x, default allocator), max |grad diff| {r['max_abs_grad_diff']:.1e}, "
            f"max |loss diff| {r['max_abs_loss_diff']:.1e}"
        )

    summary = (
        f"Gradient checkpointing, training memory ({what}) and best of {a.steps} step times: "
        + "; ".join(part(case, r) for case, r in rows.items())
        + f" ({describe(m)}; the machine shared with other work, so the times are noisy)."
    )
    print(summary)
    write_result(
        "grad_checkpointing",
        {
            "recipe": None,
            "value": worst,
            "unit": "x less training memory (the smaller of the models)",
            "target": TARGET,
            "meets_target": all(r["memory_ratio"] >= TARGET for r in rows.values()),
            "anchor": None,
            "anchor_source": "Target from the issue (checkpointing at least halves peak memory); no published figure",
            "summary": summary,
            "device": a.device,
            "memory_measure": what,
            "steps": a.steps,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
