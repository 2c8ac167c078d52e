"""Long-sequence attention: time and peak memory of each kernel against full SDPA, and the accuracy each costs.

``speed`` (default): for every kernel in ``--kernels`` (sdpa, chunked, linformer, performer,
lsh; add ``manual`` for the written-out softmax) and length in ``--lengths`` (512 ... 8192), one fresh subprocess builds one
``MultiHeadAttention`` layer (batch 1, ``--heads`` 4 × 64, fp32, ``--threads`` 1) and times its
forward (under ``no_grad``) and its forward + backward, best of ``--repeats``, after a warm-up pass
at length 128. Its peak memory is the child's peak RSS (``ru_maxrss``) minus its RSS after the
imports and the warm-up (the first calls load kernels and lazy imports: ~170 MB for autograd's
checkpointing; an idle child's RSS is recorded too), or on a GPU ``torch.cuda.max_memory_allocated``
above what the layer holds. The forward's peak is read before the backward
runs. The child's data segment is capped at ``--cap-mb`` above its start (``RLIMIT_DATA``): a case
that would need more is recorded as ``over_cap``, not crashed. The crossover of a kernel is the
shortest measured length from which it is faster (lighter) than sdpa at every longer length.
Writes ``benchmarks/results/long_attention.json``.

``accuracy``: trains ``long_match-bert`` (the long_match task at length 2048 with ``rule=last``:
is the last token, read at the first position, a high id?) through the engine once per kernel with
``model.args.attention=<kernel>``, and records test accuracy and time per kernel in
``benchmarks/results/long_attention-accuracy.json`` (``-<length>`` appended at another
``data.args.length``), with each kernel's cost in points below
sdpa's. It needs the ``bert_classifier`` model.

Usage: ``python benchmarks/long_attention.py [speed] [--lengths 512 1024 ...] [--kernels ...]
[--repeats 2] [--cap-mb 4000] [--device cpu]`` or ``python benchmarks/long_attention.py accuracy
[--epochs E] [key=value ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KERNELS = ("sdpa", "manual", "chunked", "linformer", "performer", "lsh")
#: The default comparison; ``manual`` (the written-out O(T^2) softmax) only on request: it adds ~3 min.
DEFAULT_KERNELS = ("sdpa", "chunked", "linformer", "performer", "lsh")
LENGTHS = (512, 1024, 2048, 4096, 8192)
#: Options of each kernel in the speed benchmark (the defaults of archzoo.layers.long_attention).
OPTIONS: dict[str, dict[str, Any]] = {
    "chunked": {"chunk": 256},
    "linformer": {"proj_dim": 256},
    "performer": {"features": 256},
    "lsh": {"n_buckets": 32, "chunk": 64, "n_rounds": 2},
}


# ----------------------------------------------------------------------------- the child: one case


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _vm_data_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return 0


def child(kernel: str, t: int, heads: int, head_dim: int, repeats: int, cap_mb: int, device: str) -> dict[str, Any]:
    """Time and memory of one ``MultiHeadAttention`` layer; ``kernel == "idle"`` only imports and builds nothing."""
    import torch

    from archzoo.layers.attention import MultiHeadAttention

    torch.set_num_threads(int(os.environ.get("LONG_THREADS", "1")))
    dev = torch.device(device)
    if kernel == "idle":
        import archzoo.layers.long_attention  # noqa: F401 - the same modules as a real case

        return {"rss_mb": _rss_mb()}
    if dev.type == "cpu" and cap_mb:
        cap = _vm_data_bytes() + cap_mb * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.getrlimit(resource.RLIMIT_DATA)[1]))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    dim = heads * head_dim
    try:
        mha = MultiHeadAttention(dim, heads, attention=kernel, max_len=t, attention_options=OPTIONS.get(kernel)).to(dev)
        x = torch.randn(1, t, dim, device=dev)
        warm = torch.randn(1, min(t, 128), dim, device=dev, requires_grad=True)
        mha(warm)[0].sum().backward()  # first calls load kernels and lazy imports (checkpoint's: ~170 MB)
        mha.zero_grad(set_to_none=True)
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated() / 2**20
        else:
            base = _rss_mb()  # after the imports and the warm-up: what the case itself adds comes on top
        fwd = []
        with torch.no_grad():
            for _ in range(repeats):
                sync()
                t0 = time.perf_counter()
                mha(x)
                sync()
                fwd.append(time.perf_counter() - t0)
        fwd_peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _rss_mb()) - base
        xg = x.clone().requires_grad_()
        train = []
        for _ in range(repeats):
            mha.zero_grad(set_to_none=True)
            xg.grad = None
            sync()
            t0 = time.perf_counter()
            mha(xg)[0].square().mean().backward()
            sync()
            train.append(time.perf_counter() - t0)
        train_peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _rss_mb()) - base
    except (MemoryError, RuntimeError) as e:
        if "memory" not in str(e).lower() and not isinstance(e, MemoryError):
            raise
        return {"status": "over_cap", "error": str(e).splitlines()[0][:200]}
    return {
        "status": "ok",
        "forward_ms": round(min(fwd) * 1e3, 3),
        "train_ms": round(min(train) * 1e3, 3),
        "forward_all_ms": [round(s * 1e3, 3) for s in fwd],
        "train_all_ms": [round(s * 1e3, 3) for s in train],
        "forward_peak": round(fwd_peak, 1),
        "train_peak": round(train_peak, 1),
        "baseline_mb": round(base, 1),
    }


# ----------------------------------------------------------------------------- the parent: all cases


def run_case(kernel: str, t: int, a: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_child", kernel, str(t), str(a.heads), str(a.head_dim), str(a.repeats)]
    cmd += [str(a.cap_mb), a.device]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    env["LONG_THREADS"] = str(a.threads)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.case_timeout, check=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:  # killed for memory, or a crash: recorded, not raised
        return {"status": "over_cap" if p.returncode in (-9, 137) else "failed", "error": p.stderr.strip()[-300:]}
    return json.loads(lines[-1])


def crossover(rows: dict[int, dict[str, Any]], ref: dict[int, dict[str, Any]], key: str) -> int | None:
    """Shortest length from which ``rows`` beats ``ref`` on ``key`` at every longer measured length."""
    best = None
    for t in sorted(rows, reverse=True):
        mine, theirs = rows[t], ref[t]
        if mine.get("status") != "ok":
            break
        if theirs.get("status") == "ok" and mine[key] >= theirs[key]:
            break
        best = t
    return best


def speed(a: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    from _common import machine, write_result

    t_start = time.perf_counter()
    base = run_case("idle", 0, a)["rss_mb"] if a.device == "cpu" else 0.0  # for the record
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for kernel in a.kernels:
        table[kernel] = {}
        for t in a.lengths:
            r = run_case(kernel, t, a)
            table[kernel][t] = r
            shown = (
                f"fwd {r['forward_ms']:.1f} ms / {r['forward_peak']:.0f} MB, fwd+bwd {r['train_ms']:.1f} ms / "
                f"{r['train_peak']:.0f} MB"
                if r.get("status") == "ok"
                else r.get("status")
            )
            print(f"{kernel:>10} T={t:>5}: {shown}", flush=True)
    ref = table["sdpa"]
    cross: dict[str, dict[str, int | None]] = {}
    for kernel in a.kernels:
        if kernel == "sdpa":
            continue
        cross[kernel] = {
            "forward_faster": crossover(table[kernel], ref, "forward_ms"),
            "train_faster": crossover(table[kernel], ref, "train_ms"),
            "forward_lighter": crossover(table[kernel], ref, "forward_peak"),
            "train_lighter": crossover(table[kernel], ref, "train_peak"),
        }

    def said(v: int | None) -> str:
        return "never" if v is None else f"T≥{v}"

    value = "; ".join(
        f"{k} faster {said(c['train_faster'])}, lighter {said(c['train_lighter'])}" for k, c in cross.items()
    )
    longest = max(a.lengths)
    at = {k: table[k][longest] for k in a.kernels}
    ok = {k: r for k, r in at.items() if r.get("status") == "ok"}
    parts = [f"{k} {r['train_ms'] / 1e3:.2f} s / {r['train_peak']:.0f} MB" for k, r in ok.items()]
    over = [k for k, r in at.items() if r.get("status") != "ok"]
    m = machine()
    unit = "MB of CUDA memory" if a.device == "cuda" else "MB of peak RSS above the warmed-up child"
    summary = (
        f"One MultiHeadAttention layer ({a.heads}×{a.head_dim}, batch 1, fp32, {a.threads} thread"
        f"{'' if a.threads == 1 else 's'}, {a.device}), forward+backward at T={longest}: "
        + ", ".join(parts)
        + (f"; over the {a.cap_mb} MB cap: {', '.join(over)}" if over else "")
        + f" ({unit}); load average {m['load_average_1min']} on {m['cores']} cores, so times are noisy."
    )
    approx = [k for k in ("linformer", "performer", "lsh") if k in cross]
    meets = all(cross[k]["train_faster"] is not None for k in approx) if approx else None
    write_result(
        "long_attention" + ("" if a.device == "cpu" else f"-{a.device}"),
        {
            "recipe": None,
            "value": value,
            "target": "linformer, performer and lsh faster than sdpa (fwd+bwd) by T=8192",
            "meets_target": meets,
            "anchor": None,
            "anchor_source": None,
            "summary": summary,
            "device": a.device,
            "threads": a.threads,
            "heads": a.heads,
            "head_dim": a.head_dim,
            "repeats": a.repeats,
            "cap_mb": a.cap_mb,
            "idle_rss_mb": base,
            "options": OPTIONS,
            "crossover": cross,
            "table": {k: {str(t): r for t, r in rows.items()} for k, rows in table.items()},
            "seconds": round(time.perf_counter() - t_start, 1),
        },
    )


# ----------------------------------------------------------------------------- accuracy on long_match


def accuracy(a: argparse.Namespace, overrides: list[str]) -> None:
    """Train long_match-bert once per kernel through the engine; test accuracy and time of each."""
    import tempfile

    import torch

    sys.path.insert(0, str(HERE))
    import archzoo.models  # noqa: F401 - registers the models
    from _common import machine, write_result
    from archzoo.config import load_config
    from archzoo.engine.trainer import Trainer
    from archzoo.registry import MODELS

    if "bert_classifier" not in MODELS:
        raise SystemExit(
            "The accuracy mode trains long_match-bert, which needs the bert_classifier model (models/bert.py)."
        )
    torch.set_num_threads(a.threads)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kernel in a.kernels:
            extra = [f"model.args.attention={kernel}", f"train.threads={a.threads}", f"log.dir={tmp}"]
            extra += ["log.progress=lines", *([f"train.epochs={a.epochs}"] if a.epochs else []), *overrides]
            t0 = time.perf_counter()
            trainer = Trainer(load_config("long_match-bert", None, extra))
            results = trainer.fit()
            summary = json.loads((trainer.run_dir / "results.json").read_text())
            rows[kernel] = {
                "test_acc": results["test/acc"],
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "train_seconds": summary["train_seconds"],
                "epochs_run": summary["epochs_run"],
                "parameters": summary["parameters"],
                "metrics": summary["metrics"],
            }
            print(f"{kernel}: test/acc {results['test/acc']:.4f} in {rows[kernel]['wall_seconds']} s", flush=True)
    ref = rows.get("sdpa", {}).get("test_acc")
    for r in rows.values():  # the accuracy cost of each kernel: points below full attention
        r["cost_points"] = None if ref is None else round(100 * (ref - r["test_acc"]), 1)
    parts = [f"{k} {100 * r['test_acc']:.1f}% in {r['train_seconds']:.0f} s" for k, r in rows.items()]
    cfg = load_config("long_match-bert", None, overrides)
    length, rule = cfg.data.args.get("length"), cfg.data.args.get("rule", "match")
    task = (
        "is the last token, read at the first position, a high id?"
        if rule == "last"
        else "does the first token come back in the second half?"
    )
    m = machine()
    name = "long_attention-accuracy" + ("" if length == 2048 else f"-{length}")
    write_result(
        name,
        {
            "recipe": "long_match-bert",
            "overrides": overrides,
            "value": ", ".join(f"{k} {100 * r['test_acc']:.1f}%" for k, r in rows.items()),
            "unit": "test accuracy per kernel",
            "target": None,
            "meets_target": None,
            "anchor": None,
            "anchor_source": "full SDPA attention on the same task is the reference; the issue sets no figure",
            "summary": f"long_match at length {length} ({task}) test accuracy and training time per kernel: "
            f"{', '.join(parts)}; chance is 50% ({a.threads} thread, load average {m['load_average_1min']}, "
            "timed while other work loaded the machine).",
            "kernels": rows,
        },
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kernel, t, heads, hd, repeats, cap, device = sys.argv[2:9]
        print(json.dumps(child(kernel, int(t), int(heads), int(hd), int(repeats), int(cap), device)))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="speed", choices=("speed", "accuracy"))
    p.add_argument("--kernels", nargs="+", default=list(DEFAULT_KERNELS), choices=KERNELS)
    p.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS))
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cap-mb", type=int, default=4000, help="memory a case may take, in MB (0: no cap)")
    p.add_argument("--case-timeout", type=int, default=300)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--epochs", type=int, default=0, help="accuracy mode: override the recipe's epochs")
    a, rest = p.parse_known_args()
    if a.mode == "speed":
        if rest:
            raise SystemExit(f"the speed mode takes no overrides, got {rest}")
        if "sdpa" not in a.kernels:
            raise SystemExit("the speed mode compares against sdpa: keep it in --kernels")
        speed(a)
    else:
        a.kernels = [k for k in a.kernels if k != "manual"]
        accuracy(a, rest)


if __name__ == "__main__":
    main()
