"""Shared by the benchmark scripts: the machine description and the JSON result files."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from archzoo.utils import machine_facts

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """What the figures were measured on (archzoo.utils.machine_facts, and the commit)."""
    info = machine_facts()
    # A copy of the tree without .git (a lent GPU machine) names its commit in ARCHZOO_GIT.
    info["git"] = os.environ.get("ARCHZOO_GIT", "")
    if not info["git"]:
        try:
            info["git"] = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            pass
    return info


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """The best GFLOP/s of ``repeats`` fp32 ``n``×``n`` matmuls on the CPU at torch's current thread count.

    Two warm-up products first: the first ones after a change of thread count run slow,
    and a best of 5 still read 90 against 122 GFLOP/s for a best of 10 on 2 cores.
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    a @ b
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best / 1e9


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued work (a no-op off CUDA): call it before reading a clock."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def describe(m: dict[str, Any]) -> str:
    threads = m.get("torch_threads")
    where = m.get("gpu") or f"{m.get('cpu', 'CPU')}, {threads} thread{'' if threads == 1 else 's'}"
    if "load_average_1min" in m:
        where += f", load {m['load_average_1min']}"
    return where


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d"), "machine": machine(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def seeded_main(doc: str, known: dict[str, Any], run: Callable[..., Any], label_help: str) -> None:
    """The command line of a benchmark that trains recipes over seeds.

    ``benchmark.py [RECIPE ...] [--seeds S ...] [--data-dir D] [--label L] [key=value ...]``:
    the recipes (default: every key of ``known``; another name is refused), seeds 0-9 by default,
    and dotted overrides for every training. Calls ``run(recipe, seeds, overrides, data_dir,
    runs, label)`` for each recipe, with ``runs`` a temporary directory for the run folders.
    """
    import argparse
    import tempfile

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("recipes", nargs="*")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--data-dir")
    p.add_argument("--label", default="", help=label_help)
    a, overrides = p.parse_known_args()
    recipes = [r for r in a.recipes if "=" not in r] or list(known)
    overrides += [r for r in a.recipes if "=" in r]
    unknown = [r for r in recipes if r not in known]
    if unknown:
        raise SystemExit(f"unknown recipe {unknown[0]!r}; this benchmark runs {', '.join(known)}")
    with tempfile.TemporaryDirectory() as tmp:
        for r in recipes:
            run(r, a.seeds, overrides, a.data_dir, Path(tmp), a.label)
