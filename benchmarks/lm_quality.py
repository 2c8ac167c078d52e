"""Train the recurrent language models within the issue's time budget, scaled to this machine.

Usage: ``python benchmarks/lm_quality.py shakespeare-lstm ptb-lstm [--data-dir D] [--threads N]
[key=value ...]``.

Issue 15 states its budgets for 2 CPU cores with a 150 GFLOP/s fp32 matmul peak: 10
minutes for the character LSTM on tiny Shakespeare (val loss ≤ 1.60 nats/char over the
whole validation span), 30 minutes for the word LSTM on the Penn Treebank (test
perplexity ≤ 114.5 over all 82,430 test tokens). This script measures the machine's
peak at the training's thread count (the best of several 2048² fp32 matmuls), scales the
budget by 150 / peak, trains the recipe through the engine with ``train.max_time`` set
to that budget, and records both peaks and both budgets, the configuration used, the
final metrics and the curve of the validation metric against wall-clock seconds
(validation included), drawn as ``results/lm-<recipe>-curve.png``. Writes
``results/lm-<recipe>.json``; the target is met only when the metric is met within
the scaled budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, matmul_peak, write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402
from archzoo.utils import read_metrics  # noqa: E402

#: The issue's reference machine: 2 cores with this fp32 matmul peak.
REFERENCE_GFLOPS = 150.0

# recipe -> the budget on the reference machine (s), the metric, its target, the curve's column.
SPECS = {
    "shakespeare-lstm": {"budget_s": 600, "metric": "test/loss", "target": 1.60, "curve": "val/loss"},
    # 114.5: Zaremba et al. 2014's small non-regularised LSTM (their code's README: 115 in about an hour).
    "ptb-lstm": {"budget_s": 1800, "metric": "test/ppl", "target": 114.5, "curve": "val/ppl"},
}


def curve(run_dir: Path, column: str) -> list[dict[str, float]]:
    """``(seconds, value)`` of every validation in the run's metrics.csv."""
    return [
        {"seconds": round(r["time"], 1), "step": int(r["step"]), column: r[column]}
        for r in read_metrics(run_dir / "metrics.csv")
        if column in r
    ]


def draw(points: list[dict[str, float]], column: str, target: float, budget: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    ax.plot([p["seconds"] / 60 for p in points], [p[column] for p in points], marker="o", ms=3, label=column)
    ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:g}")
    ax.axvline(budget / 60, color="gray", ls=":", lw=1, label=f"scaled budget {budget / 60:.1f} min")
    ax.set_xlabel("wall clock (minutes, validation included)")
    ax.set_ylabel(column)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(recipe: str, overrides: list[str], data_dir: str | None, runs: Path, threads: int) -> dict:
    spec = SPECS[recipe]
    torch.set_num_threads(threads)
    peak_before = matmul_peak()
    budget = spec["budget_s"] * REFERENCE_GFLOPS / peak_before
    settings = [f"train.threads={threads}", f"train.max_time={budget:.0f}", *overrides]
    cfg = load_config(recipe, None, [f"log.dir={runs}", "log.progress=lines", *settings])
    t0 = time.perf_counter()
    trainer = Trainer(cfg, data_dir=data_dir)
    results = trainer.fit()
    wall = time.perf_counter() - t0
    # Measured again after training: other work on the machine would show as a lower peak.
    peak_after = matmul_peak()
    summary = json.loads((trainer.run_dir / "results.json").read_text())
    value = results[spec["metric"]]
    points = curve(trainer.run_dir, spec["curve"])
    png = RESULTS / f"lm-{recipe}-curve.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    draw(points, spec["curve"], spec["target"], budget, f"{recipe}: {spec['curve']} against wall clock", png)
    within = summary["train_seconds"] <= budget * 1.02 + 60  # the last validation may end just past the budget
    resolved = yaml.safe_load((trainer.run_dir / "config.yaml").read_text())
    payload = {
        "recipe": recipe,
        "overrides": settings,
        "metric": spec["metric"],
        "value": value,
        "target": spec["target"],
        "meets_target": bool(value <= spec["target"] and within),
        "reference_gflops": REFERENCE_GFLOPS,
        "matmul_peak_gflops": round(peak_before, 1),
        "matmul_peak_after_gflops": round(peak_after, 1),
        "reference_budget_s": spec["budget_s"],
        "budget_s": round(budget, 1),
        "parameters": summary["parameters"],
        "epochs_run": summary["epochs_run"],
        "stopped_for_time": summary.get("stopped_for_time", False),
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall, 1),
        "metrics": summary["metrics"],
        "curve": points,
        "curve_png": png.name,
        "config": resolved,
    }
    write_result(f"lm-{recipe}", payload)
    print(
        f"{recipe}: {spec['metric']} = {value:.4f} (target {spec['target']}) in {summary['train_seconds']:.0f} s "
        f"of a {budget:.0f} s budget ({peak_before:.0f} GFLOP/s peak)"
    )
    return payload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="+")
    p.add_argument("--data-dir")
    p.add_argument("--runs", default="runs/benchmarks")
    p.add_argument("--threads", type=int, default=2, help="torch threads for the peak and the training (default 2)")
    a, overrides = p.parse_known_args()
    recipes = [r for r in a.recipes if "=" not in r]
    overrides += [r for r in a.recipes if "=" in r]
    for r in recipes:
        if r not in SPECS:
            raise SystemExit(f"unknown recipe {r!r}; one of {', '.join(SPECS)}")
    for r in recipes:
        run(r, overrides, a.data_dir, Path(a.runs), a.threads)


if __name__ == "__main__":
    main()
