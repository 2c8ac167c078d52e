"""The encoder-decoder Transformer beside the GRU-attention model on the seq2seq tasks, on the same data.

Usage: ``python benchmarks/transformer_seq2seq.py reverse sort dates addition fra [--data-dir D]
[--beam K] [--gru-from-results] [--reuse LABEL=RUN] [key=value ...]``. Each task writes
``results/tfseq2seq-<task>.json`` with, for ``<task>-transformer`` and ``<task>-gru`` (whose
data arguments are the same):

* the test exact match (``val/bleu`` for fra, which holds out one split) of the run's final
  weights decoded greedily and with beam search of width ``--beam`` (re-opened from the run
  directory as ``archzoo eval`` opens it, only ``task.args.beam`` changed);
* parameters and training seconds.

``value`` is the Transformer's greedy figure; the target is the issue's (100% exact on
reverse, sort and dates, 99% on addition; none for BLEU).

``--gru-from-results`` takes the GRU row from ``results/seq2seq-<task>.json`` (written by
benchmarks/seq2seq_quality.py from the same recipe) instead of training it again; the row
then says so (``source``) and carries that file's date, machine and commit. ``--reuse
transformer=RUN`` (or ``gru=RUN``) takes a finished run directory of the same config as that row.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

_spec = importlib.util.spec_from_file_location("seq2seq_quality", Path(__file__).with_name("seq2seq_quality.py"))
assert _spec is not None and _spec.loader is not None
s2s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s2s)

#: task -> (metric, target): the issue's targets for the Transformer
TASKS: dict[str, tuple[str, float | None]] = {
    "reverse": ("test/exact", 1.0),
    "sort": ("test/exact", 1.0),
    "dates": ("test/exact", 1.0),
    "addition": ("test/exact", 0.99),
    "fra": ("val/bleu", None),
}


def model_row(
    recipe: str, metric: str, overrides: list[str], data_dir: str | None, runs: Path, beam: int, reuse: str | None
) -> dict[str, Any]:
    """Train (or reuse) ``recipe`` and decode its run greedily and with the beam."""
    row = s2s.train(recipe, overrides, data_dir, runs, reuse)
    split = metric.split("/")[0]
    row["decoding"] = s2s.decoded(row["run_dir"], split, [1, beam], data_dir)
    row["greedy"] = row["decoding"]["1"].get(metric)
    row["beam"] = row["decoding"][str(beam)].get(metric)
    row["recipe"] = recipe
    row["source"] = "trained by this benchmark" if reuse is None else f"reused run {reuse}"
    return row


def gru_from_results(task: str, metric: str, beam: int) -> dict[str, Any]:
    """The GRU-attention row of ``results/seq2seq-<task>.json`` (the shipped recipe, attention on)."""
    path = RESULTS / f"seq2seq-{task}.json"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist; run benchmarks/seq2seq_quality.py {task} or drop --gru-from-results")
    d = json.loads(path.read_text())
    row = d["rows"]["attention"]
    decoding = d.get("decoding", {}).get("attention")
    if decoding is not None and d.get("beam") != beam:
        raise SystemExit(f"{path} decoded with beam {d.get('beam')}, not {beam}; pass --beam {d.get('beam')}")
    extra = [o for o in row["overrides"] if o != "train.threads=1"]
    if extra:
        raise SystemExit(f"{path}'s GRU row was trained with {extra}, not as shipped")
    if decoding is None:  # a result written before seq2seq_quality.py decoded again: the training's own figure
        decoding = {"greedy": row["value"], "beam": None}
    return {
        "recipe": d["recipe"],
        "source": f"benchmarks/results/{path.name} (benchmarks/seq2seq_quality.py, {d['date']}, "
        f"commit {d['machine'].get('git')}), not retrained"
        + ("" if decoding["beam"] is not None else "; greedy only, no beam figure in that file"),
        "machine": d["machine"],
        "parameters": row["parameters"],
        "train_seconds": row["train_seconds"],
        "epochs_run": row["epochs_run"],
        "greedy": decoding["greedy"],
        "beam": decoding["beam"],
        "metrics": row["metrics"],
    }


def _fmt(v: float | None, bleu: bool) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f} BLEU" if bleu else f"{100 * v:.2f}%"


def summarize(task: str, rows: dict[str, dict[str, Any]], beam: int, load: float | None) -> dict[str, Any]:
    """The result payload of ``task`` from its Transformer and GRU rows."""
    metric, target = TASKS[task]
    tf, gru = rows["transformer"], rows["gru"]
    value = tf["greedy"]
    ok = None if target is None or value is None else value >= target - 1e-9
    bleu = metric.endswith("bleu")
    what = "validation BLEU" if bleu else "test exact match"
    reused = "" if gru["source"].startswith("trained") else " (GRU figures reused from seq2seq_quality.py)"
    summary = (
        f"{task}: Transformer {what} {_fmt(tf['greedy'], bleu)} greedy / {_fmt(tf['beam'], bleu)} beam {beam}, "
        f"{tf['parameters']:,} parameters, {tf['train_seconds']:.0f} s training; GRU-attention "
        f"{_fmt(gru['greedy'], bleu)} / {_fmt(gru['beam'], bleu)}, {gru['parameters']:,} parameters, "
        f"{gru['train_seconds']:.0f} s{reused}; 1 thread, shared 2-core machine (load {load}), times are noisy."
    )
    return {
        "recipe": tf["recipe"],
        "task": task,
        "metric": metric,
        "value": value,
        "unit": "BLEU" if bleu else "exact",
        "target": target,
        "meets_target": ok,
        "anchor": gru["greedy"],
        "anchor_source": f"{gru['recipe']} (GRU with Bahdanau attention) on the same data: {gru['source']}",
        "beam": beam,
        "summary": summary,
        "rows": rows,
    }


def run(
    task: str, overrides: list[str], data_dir: str | None, runs: Path, beam: int, gru_results: bool, reuse: dict
) -> dict[str, Any]:
    metric, _ = TASKS[task]
    rows = {"transformer": model_row(f"{task}-transformer", metric, overrides, data_dir, runs, beam,
                                     reuse.get("transformer"))}  # fmt: skip
    if gru_results:
        rows["gru"] = gru_from_results(task, metric, beam)
    else:
        rows["gru"] = model_row(f"{task}-gru", metric, overrides, data_dir, runs, beam, reuse.get("gru"))
    for label, row in rows.items():
        print(f"{task} {label}: {metric} greedy {row['greedy']} beam {beam} {row['beam']}", flush=True)
    from _common import machine

    payload = summarize(task, rows, beam, machine().get("load_average_1min"))
    write_result(f"tfseq2seq-{task}", payload)
    return payload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("tasks", nargs="+")
    p.add_argument("--data-dir")
    p.add_argument("--runs", default="runs/benchmarks")
    p.add_argument("--beam", type=int, default=5, help="beam width of the beam-search evaluation (default 5)")
    p.add_argument("--gru-from-results", action="store_true", help="take the GRU row from results/seq2seq-<task>.json")
    p.add_argument("--reuse", action="append", default=[], metavar="LABEL=RUN", help="transformer=RUN or gru=RUN")
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
        run(t, overrides, a.data_dir, Path(a.runs), a.beam, a.gru_from_results, reuse)


if __name__ == "__main__":
    main()
