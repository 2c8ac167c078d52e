"""Train the seq2seq recipes with and without attention and record their test exact match (or BLEU).

Usage: ``python benchmarks/seq2seq_quality.py reverse sort addition dates fra [--data-dir D]
[--max-time S] [key=value ...]``. Each task writes ``results/seq2seq-<task>.json`` with the
test metrics of both models (the recipe as shipped, then ``model.args.attention=false``), the
parameter counts, the wall times and the target from the issue.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402

# recipe, metric, target (the issue's, for the model with attention)
TASKS = {
    "reverse": ("reverse-gru", "test/exact", 1.0),
    "sort": ("sort-gru", "test/exact", 1.0),
    "addition": ("addition-gru", "test/exact", 0.99),
    "dates": ("dates-gru", "test/exact", 1.0),
    "fra": ("fra-gru", "val/bleu", None),  # fra_eng holds out one split, the validation one
}


def train(recipe: str, overrides: list[str], data_dir: str | None, runs: Path) -> dict:
    t0 = time.perf_counter()
    cfg = load_config(recipe, None, [f"log.dir={runs}", "log.progress=lines", *overrides])
    trainer = Trainer(cfg, data_dir=data_dir)
    trainer.fit()
    summary = json.loads((trainer.run_dir / "results.json").read_text())
    return {
        "overrides": overrides,
        "parameters": summary["parameters"],
        "epochs_run": summary["epochs_run"],
        "stopped_for_time": summary.get("stopped_for_time", False),
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "metrics": summary["metrics"],
    }


def run(task: str, overrides: list[str], data_dir: str | None, runs: Path) -> dict:
    recipe, metric, target = TASKS[task]
    rows = {}
    for label, extra in (("attention", []), ("no_attention", ["model.args.attention=false"])):
        rows[label] = train(recipe, [*overrides, *extra], data_dir, runs)
        rows[label]["value"] = rows[label]["metrics"].get(metric)
        print(f"{task} {label}: {metric} = {rows[label]['value']}", flush=True)
    value = rows["attention"]["value"]
    ok = None if target is None or value is None else value >= target - 1e-9
    payload = {
        "recipe": recipe,
        "task": task,
        "metric": metric,
        "value": value,
        "no_attention_value": rows["no_attention"]["value"],
        "target": target,
        "meets_target": ok,
        "rows": rows,
    }
    write_result(f"seq2seq-{task}", payload)
    return payload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("tasks", nargs="+")
    p.add_argument("--data-dir")
    p.add_argument("--runs", default="runs/benchmarks")
    a, overrides = p.parse_known_args()
    tasks = [t for t in a.tasks if "=" not in t]
    overrides += [t for t in a.tasks if "=" in t]
    for t in tasks:
        if t not in TASKS:
            raise SystemExit(f"unknown task {t!r}; one of {', '.join(TASKS)}")
        run(t, overrides, a.data_dir, Path(a.runs))


if __name__ == "__main__":
    main()
