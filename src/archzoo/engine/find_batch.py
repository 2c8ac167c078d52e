"""The largest training batch that fits a memory budget: ``archzoo find-batch RECIPE``.

Each probe trains a fresh process for two optimizer steps (``train.grad_accum``
micro-batches each; the second step is the first with the optimizer's state
allocated) at one batch size, through the real :class:`~archzoo.engine.trainer.Trainer`
and the task's own training step, and reports its peak memory:

* on a GPU, ``torch.cuda.max_memory_allocated`` of the whole probe (the data on
  the device included), against ``--budget-mb`` or else the device's memory; an
  out-of-memory error counts as not fitting;
* on the CPU, the peak resident set of the probe process (``VmHWM`` of
  ``/proc/self/status``, else ``getrusage``'s ``ru_maxrss``), interpreter, data and
  model included, against ``--budget-mb``, which the CPU requires.

The search doubles the batch from 2 until a probe does not fit (or the training
split, or ``--max-batch``, is reached), then bisects between the last batch
that fitted and the first that did not: :math:`O(\\log_2 B)` probes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archzoo.errors import UserError

START = 2  # the first batch probed (batch norm in training mode needs two samples)


@dataclass
class Probe:
    """One probe's outcome: the batch asked for and the batch drawn, its peak and whether it fitted."""

    batch: int
    drawn: int
    peak_mb: float
    setup_mb: float
    fits: bool
    reason: str = ""
    train_examples: int = 0


def _rss_peak_mb() -> float:
    """This process's peak resident set in MiB (VmHWM, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20  # kB on Linux, bytes on macOS


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Two optimizer steps at ``spec["batch"]`` through the Trainer (in this process); its peak memory."""
    import torch

    from archzoo.config import load_config
    from archzoo.engine.trainer import Trainer
    from archzoo.tasks.base import to_device

    b = int(spec["batch"])
    overrides = [*spec["overrides"], f"data.batch_size={b}", "log.progress=none", "log.tensorboard=false"]
    cfg = load_config(spec["recipe"], None, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, run_dir=Path(tmp) / "probe", data_dir=spec.get("data_dir"))
        cuda = trainer.device.type == "cuda"
        setup = torch.cuda.max_memory_allocated(trainer.device) / 2**20 if cuda else _rss_peak_mb()
        ctx, net, task = trainer.ctx, trainer.net, trainer.task
        micro = 2 * cfg.train.grad_accum
        drawn = 0
        net.train()
        try:
            batches = trainer.data.train.batches(b, shuffle=True, seed=cfg.train.seed, epoch=0, augment=True)
            for i, batch in enumerate(batches):
                if i >= micro:
                    break
                batch = to_device(batch, trainer.device, trainer.memory_format)
                drawn = max(drawn, int(task.count(batch)))
                with ctx.no_sync(net):
                    task.training_step(net, batch, ctx)
                ctx.micro_step += 1
            if cuda:
                torch.cuda.synchronize(trainer.device)
        except torch.cuda.OutOfMemoryError:
            peak = torch.cuda.max_memory_allocated(trainer.device) / 2**20
            return {"batch": b, "drawn": b, "peak_mb": peak, "setup_mb": setup, "oom": True,
                    "device": "cuda", "train_examples": len(trainer.data.train)}  # fmt: skip
        peak = torch.cuda.max_memory_allocated(trainer.device) / 2**20 if cuda else _rss_peak_mb()
        total = torch.cuda.get_device_properties(trainer.device).total_memory / 2**20 if cuda else None
        return {
            "batch": b,
            "drawn": drawn,
            "peak_mb": peak,
            "setup_mb": setup,
            "oom": False,
            "device": trainer.device.type,
            "device_mb": total,
            "train_examples": len(trainer.data.train),
        }


def probe_in_subprocess(recipe: str, overrides: list[str], batch: int, data_dir: str | None) -> dict[str, Any]:
    """:func:`run_probe` in a fresh interpreter, so each peak is that batch's alone."""
    spec = {"recipe": recipe, "overrides": overrides, "batch": batch, "data_dir": data_dir}
    r = subprocess.run(
        [sys.executable, "-m", "archzoo.engine.find_batch", json.dumps(spec)], capture_output=True, text=True
    )
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            out = json.loads(line)
            if "error" in out:
                raise UserError(out["error"])
            return out
    if r.returncode < 0 or r.returncode == 137:  # killed (the kernel's out-of-memory killer)
        return {"batch": batch, "drawn": batch, "peak_mb": float("inf"), "setup_mb": float("nan"), "oom": True,
                "device": "cpu", "killed": True}  # fmt: skip
    tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
    raise UserError(f"The probe at batch {batch} failed ({tail}).")


def search(fits: Callable[[int], Probe], max_batch: int) -> tuple[int, list[Probe]]:
    """Double from :data:`START` until a batch does not fit, then bisect; the largest fitting batch and the probes."""
    probes: list[Probe] = []
    limit = max_batch
    good: int | None = None
    bad: int | None = None
    b = min(START, limit)
    while True:
        p = fits(b)
        probes.append(p)
        if p.train_examples:
            limit = min(limit, p.train_examples)
        if not p.fits:
            bad = b
            break
        good = b
        if p.drawn < b:  # the whole training split is one batch
            break
        if b >= limit:
            break
        b = min(2 * b, limit)
    if good is None:
        raise UserError(f"Batch {b}, the smallest probed, does not fit: {probes[-1].reason or 'it ran out of memory'}.")
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        p = fits(mid)
        probes.append(p)
        if p.fits:
            good = mid
        else:
            bad = mid
    return good, probes


def find_batch(
    recipe: str,
    overrides: list[str],
    budget_mb: float | None = None,
    max_batch: int = 65536,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """The largest batch whose two training steps stay within the budget, with every probe's peak."""
    if max_batch < START:
        raise UserError(f"--max-batch must be at least {START}, got {max_batch}.")
    if budget_mb is not None and budget_mb <= 0:
        raise UserError(f"--budget-mb must be positive, got {budget_mb:g}.")
    from archzoo.config import load_config
    from archzoo.engine.builders import resolve_device

    cfg = load_config(recipe, None, overrides)  # refuses a bad override before any probe
    device = resolve_device(cfg.train.device)
    if device.type == "cpu" and budget_mb is None:
        raise UserError("On the CPU, find-batch needs --budget-mb M (the peak resident memory a probe may reach).")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"find-batch measures memory on cpu or cuda, not on {device.type}.")
    budget: list[float | None] = [budget_mb]

    def fits(b: int) -> Probe:
        r = probe_in_subprocess(recipe, overrides, b, data_dir)
        if budget[0] is None:
            budget[0] = r.get("device_mb")
        limit = budget[0]
        peak = float(r["peak_mb"])
        if r.get("oom"):
            ok, why = False, "it ran out of memory"
        elif limit is not None and peak > limit:
            ok, why = False, f"its peak of {peak:.0f} MB is over the budget of {limit:.0f} MB"
        else:
            ok, why = True, ""
        return Probe(b, int(r["drawn"]), peak, float(r["setup_mb"]), ok, why, int(r.get("train_examples", 0)))

    best, probes = search(fits, max_batch)
    measure = "CUDA max_memory_allocated" if device.type == "cuda" else "peak resident set (VmHWM) of the probe process"
    return {
        "recipe": recipe,
        "device": device.type,
        "batch_size": best,
        "budget_mb": budget[0],
        "measure": measure,
        "probes": [p.__dict__ for p in probes],
    }


def format_result(r: dict[str, Any]) -> str:
    lines = [f"{'batch':>7} {'drawn':>7} {'setup MB':>10} {'peak MB':>10}  fits"]
    for p in r["probes"]:
        lines.append(
            f"{p['batch']:>7} {p['drawn']:>7} {p['setup_mb']:>10.1f} {p['peak_mb']:>10.1f}  {'yes' if p['fits'] else 'no'}"
        )
    lines.append(
        f"largest batch for {r['recipe']} on {r['device']}: {r['batch_size']} "
        f"(budget {r['budget_mb']:.0f} MB of {r['measure']})"
    )
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    """The probe process: one JSON line on stdout (an ``error`` key for a user error)."""
    spec = json.loads(argv[0])
    try:
        out = run_probe(spec)
    except UserError as e:
        out = {"error": str(e)}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
