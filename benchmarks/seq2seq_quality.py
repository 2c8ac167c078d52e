"""Train the seq2seq recipes with and without attention; record test exact match (or BLEU), greedy and beam.

Usage: ``python benchmarks/seq2seq_quality.py reverse sort addition dates fra [--data-dir D]
[--beam K] [key=value ...]``. Each task writes ``results/seq2seq-<task>.json`` with:

* the recipe as shipped, with attention: the target row (``value``, ``target``, ``meets_target``);
* the comparison setting (``comparison``): the overrides at which the model without attention
  (``model.args.attention=false``) scores below 90%, with both models trained there. Where the
  shipped setting already is one (reverse), or no longer setting exists (dates: a date is a few
  dozen characters; fra: real sentences), it is the shipped setting and its attention row is the
  target row;
* every trained model re-opened from its run directory and evaluated on the metric's split with
  greedy decoding and with beam search of width ``--beam`` (``task.args.beam``; no retraining);
* parameter counts and wall times of each training.

``--reuse LABEL=RUN`` takes a finished run directory as one row instead of training it (its
config must be the one the row would train), e.g. to finish a benchmark that was cut short.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.builders import build_task  # noqa: E402
from archzoo.engine.run import load_run  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402

NO_ATTENTION = "model.args.attention=false"
#: Below this share the model without attention counts as failing the task (the issue's 90%).
FAILING = 0.9

# recipe, metric, target (the issue's, for the model with attention), the comparison setting's overrides
TASKS: dict[str, tuple[str, str, float | None, list[str]]] = {
    "reverse": ("reverse-gru", "test/exact", 1.0, []),  # without attention it already fails as shipped
    # Sorting needs only the letters' counts, which a fixed summary holds at 5-20 letters; at
    # 25-35 letters it no longer does. Fewer strings and epochs keep the pair within minutes.
    "sort": (
        "sort-gru",
        "test/exact",
        1.0,
        [
            "data.args.min_len=25",
            "data.args.max_len=35",
            "data.args.n=6000",
            "data.args.n_val=500",
            "data.args.n_test=500",
            "train.epochs=6",
        ],
    ),  # fmt: skip
    # Five-digit numbers: an 11-character source the fixed summary must hold digit by digit.
    # Trained as the shipped recipe trains (100,000 sums, 4 epochs): 20,000 sums taught neither model.
    "addition": (
        "addition-gru",
        "test/exact",
        0.99,
        ["data.args.max_value=100000", "data.args.n_val=1000", "data.args.n_test=1000"],
    ),
    # A single date is at most 29 characters, which a fixed summary holds (98%); a range of two
    # dates (up to about 90 characters in, a 21-character ISO interval out) is the longer form.
    "dates": ("dates-gru", "test/exact", 1.0, ["data.args.ranges=true", "data.args.n=12000", "train.epochs=4"]),
    "fra": ("fra-gru", "val/bleu", None, []),  # fra_eng holds out one split, the validation one
}


def _setting(cfg: Any) -> dict[str, Any]:
    """What a row's training depends on: the config without where it logs."""
    d = cfg.to_dict()
    d.pop("log", None)
    return d


def train(
    recipe: str, overrides: list[str], data_dir: str | None, runs: Path, reuse: str | Path | None = None
) -> dict[str, Any]:
    """Train ``recipe`` with ``overrides``; with ``reuse``, take that finished run of the same config instead."""
    t0 = time.perf_counter()
    cfg = load_config(recipe, None, [f"log.dir={runs}", "log.progress=lines", *overrides])
    if reuse is not None:
        run_dir = Path(reuse)
        if _setting(load_config(None, run_dir / "config.yaml")) != _setting(cfg):
            raise SystemExit(f"{run_dir} was not trained with {recipe} {' '.join(overrides)}")
    else:
        trainer = Trainer(cfg, data_dir=data_dir)
        trainer.fit()
        run_dir = trainer.run_dir
    summary = json.loads((run_dir / "results.json").read_text())
    return {
        "overrides": overrides,
        "run_dir": str(run_dir),
        "parameters": summary["parameters"],
        "epochs_run": summary["epochs_run"],
        "stopped_for_time": summary.get("stopped_for_time", False),
        "train_seconds": summary["train_seconds"],
        # a reused run's own wall time is not known here: its training seconds stand in
        "wall_seconds": summary["train_seconds"] if reuse is not None else round(time.perf_counter() - t0, 1),
        "metrics": summary["metrics"],
    }


def decoded(run_dir: str | Path, split: str, beams: list[int], data_dir: str | None = None) -> dict[str, Any]:
    """The run's final weights evaluated on ``split`` once per beam width (1 is greedy): ``{"1": {...}, "5": {...}}``.

    The run is re-opened as ``archzoo eval`` opens it; only ``task.args.beam`` changes.
    """
    run = load_run(run_dir, data_dir)
    out: dict[str, Any] = {}
    for k in beams:
        cfg = copy.deepcopy(run.cfg)
        cfg.task.args = {**cfg.task.args, "beam": k}
        task = build_task(cfg)
        task.setup(run.model, run.info, run.device)
        run.task = task
        t0 = time.perf_counter()
        metrics = run.evaluate(split)
        out[str(k)] = {**metrics, "seconds": round(time.perf_counter() - t0, 2)}
    return out


def plan(task: str) -> list[tuple[str, list[str]]]:
    """The trainings of ``task``: (label, overrides) for the target row and the comparison pair."""
    compare = TASKS[task][3]
    out = [("attention", [])]
    if compare:
        out.append(("comparison_attention", compare))
    out.append(("no_attention", [*compare, NO_ATTENTION]))
    return out


def summarize(task: str, rows: dict[str, dict[str, Any]], beam: int) -> dict[str, Any]:
    """The result payload of ``task`` from its trained rows (each with ``value`` and ``decoding``)."""
    recipe, metric, target, compare = TASKS[task]
    value = rows["attention"]["value"]
    ok = None if target is None or value is None else value >= target - 1e-9
    with_att = rows.get("comparison_attention", rows["attention"])
    plain = rows["no_attention"]["value"]
    name = metric.split("/")[1]

    def at(row: dict[str, Any], k: int) -> float | None:
        return row.get("decoding", {}).get(str(k), {}).get(metric)

    return {
        "recipe": recipe,
        "task": task,
        "metric": metric,
        "value": value,
        "no_attention_value": plain,
        "target": target,
        "meets_target": ok,
        "beam": beam,
        # the headline metric of each trained model decoded greedily and with the beam (all metrics in rows)
        "decoding": {label: {"greedy": at(row, 1), "beam": at(row, beam)} for label, row in rows.items()},
        "comparison": {
            "overrides": compare,
            "is_shipped": not compare,
            "attention": with_att["value"],
            "no_attention": plain,
            # where the model without attention fails (below 90% exact match); BLEU has no such line
            "no_attention_fails": None if name == "bleu" or plain is None else plain < FAILING,
        },
        "rows": rows,
    }


def run(
    task: str, overrides: list[str], data_dir: str | None, runs: Path, beam: int, reuse: dict[str, str] | None = None
) -> dict[str, Any]:
    recipe, metric, _, _ = TASKS[task]
    split = metric.split("/")[0]
    rows = {}
    for label, extra in plan(task):
        row = train(recipe, [*overrides, *extra], data_dir, runs, (reuse or {}).get(label))
        row["value"] = row["metrics"].get(metric)
        row["decoding"] = decoded(row["run_dir"], split, [1, beam], data_dir)
        rows[label] = row
        got = {k: v.get(metric) for k, v in row["decoding"].items()}
        print(f"{task} {label}: {metric} = {row['value']} (greedy / beam {beam}: {got})", flush=True)
    payload = summarize(task, rows, beam)
    write_result(f"seq2seq-{task}", payload)
    return payload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("tasks", nargs="+")
    p.add_argument("--data-dir")
    p.add_argument("--runs", default="runs/benchmarks")
    p.add_argument("--beam", type=int, default=5, help="beam width of the beam-search evaluation (default 5)")
    p.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="LABEL=RUN",
        help="take the finished run RUN as row LABEL (attention, comparison_attention, no_attention) of one task",
    )
    a, overrides = p.parse_known_args()
    tasks = [t for t in a.tasks if "=" not in t]
    overrides += [t for t in a.tasks if "=" in t]
    if a.beam < 2:
        raise SystemExit("--beam must be at least 2 (1 is the greedy figure, always recorded)")
    for t in tasks:
        if t not in TASKS:
            raise SystemExit(f"unknown task {t!r}; one of {', '.join(TASKS)}")
    reuse = dict(item.split("=", 1) for item in a.reuse)
    if reuse and len(tasks) != 1:
        raise SystemExit("--reuse names rows of one task; run one task with it")
    for t in tasks:
        run(t, overrides, a.data_dir, Path(a.runs), a.beam, reuse)


if __name__ == "__main__":
    main()
