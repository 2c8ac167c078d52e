"""Regenerate the README's results table from ``benchmarks/results/*.json``.

The table lies between ``<!-- results:start -->`` and ``<!-- results:end -->``
in README.md and is never edited by hand: run ``python benchmarks/report.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, describe  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _verdict(ok: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[ok]


def rows() -> list[str]:
    out = [
        "| benchmark | result | target | anchor | meets target | measured on |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    files = sorted(RESULTS.glob("*.json"))
    for f in files:
        r = json.loads(f.read_text())
        where = f"{describe(r['machine'])}, {r['date']}"
        name = r["benchmark"]
        if name.startswith("recipe-"):
            metric = r["metric"]
            is_acc = metric.endswith("acc")
            value = _pct(r["value"]) if is_acc else f"{r['value']:.2f}"
            target = (
                (f"≥ {_pct(r['target'])}" if is_acc else f"≤ {r['target']}") if r.get("target") is not None else "–"
            )
            anchor = f"{_pct(r['anchor'])} ({r['anchor_source']})" if r.get("anchor") else "–"
            seeds = r.get("seeds") or [0]
            over = f" (mean of seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
            cut = " (stopped by train.max_time)" if r.get("stopped_for_time") else ""
            detail = f"{r['recipe']}: {metric} {value}{over}, {r['parameters']:,} params, {r['epochs_run']} epochs{cut}, {r['train_seconds']:.0f} s"
            out.append(f"| {detail} | {value} | {target} | {anchor} | {_verdict(r.get('meets_target'))} | {where} |")
        elif name == "engine_overhead":
            per = "; ".join(
                f"{x['recipe']} {x['archzoo_ms_per_step']} vs {x['raw_ms_per_step']} ms/step" for x in r["rows"]
            )
            out.append(
                f"| engine overhead vs raw PyTorch loop ({per}) | ratio {r['ratio']:.3f} | ≤ {r['target']} | – | {_verdict(r['meets_target'])} | {where} |"
            )
        elif name.startswith("time_to_accuracy"):
            az, tut = r["archzoo"], r["tutorial"]
            bound = "≥ " if r.get("speedup_is_lower_bound") else ""
            sp = f"{bound}{r['speedup']}×" if r.get("speedup") else "not reached"
            missed = " (gave up, not reached)" if tut.get("gave_up") else " (never reached)"
            ne_az, ne_tut = len(az["history"]), len(tut["history"])
            # How much of the speedup is per-epoch speed (engine, batch size) and how much is fewer epochs.
            per_epoch = (tut["seconds"] / ne_tut) / (az["seconds"] / ne_az) if ne_az and ne_tut else None
            settings = f" with {' '.join(r['overrides'])}" if r.get("overrides") else ""
            detail = (
                f"time to {_pct(r['threshold'])} Fashion-MNIST test, {r['recipe']} ({r['model']}){settings}: archzoo "
                f"{az['seconds']:.1f} s in {ne_az} epochs vs tutorial loop (Adam 1e-3, batch 64) "
                f"{tut['seconds']:.1f} s in {ne_tut} epochs{'' if tut['reached'] else missed}"
                + (f"; per epoch {per_epoch:.2f}× faster" if per_epoch else "")
            )
            out.append(f"| {detail} | {sp} | ≥ {r['target']}× | – | {_verdict(r['meets_target'])} | {where} |")
        else:
            summary = r.get("summary", "")
            out.append(
                f"| {name}: {summary} | {r.get('value', '–')} | {r.get('target', '–')} | – | {_verdict(r.get('meets_target'))} | {where} |"
            )
    return out


def main() -> None:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    table = "\n".join(rows())
    README.write_text(f"{head}{START}\n{table}\n{END}{tail}")
    print(table)


if __name__ == "__main__":
    main()
