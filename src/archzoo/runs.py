"""``archzoo runs``: a table of the runs under a directory, and ``archzoo runs compare``: their curves together."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from archzoo.errors import UserError
from archzoo.utils import read_metrics


def find_runs(root: Path, recipe: str | None = None) -> list[Path]:
    """Every run directory (one holding a ``config.yaml``) under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} does not exist; runs are written under log.dir (default runs/).")
    found = []
    for cfg in root.rglob("config.yaml"):
        rd = cfg.parent
        if recipe is not None and _config(rd).get("recipe") != recipe:
            continue
        found.append(rd)
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


def _config(rd: Path) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load((rd / "config.yaml").read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _results(rd: Path) -> dict[str, Any]:
    try:
        r = json.loads((rd / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return r if isinstance(r, dict) else {}


# The metrics a run is judged by, most telling first (a loss says least across recipes).
PREFERRED = ("acc", "exact", "bleu", "f1", "auc", "ap", "rmse", "mae", "ppl", "nll", "fid", "loss")


def key_metric(cfg: dict[str, Any], metrics: dict[str, float]) -> str | None:
    """The result a run is judged by: its recipe's anchor metric, else the first of :data:`PREFERRED`
    in its test (else val) metrics, else its first test (else val) metric."""
    anchor = (cfg.get("anchor") or {}).get("metric")
    if anchor in metrics:
        return anchor
    for split in ("test", "val"):
        for name in PREFERRED:
            if f"{split}/{name}" in metrics:
                return f"{split}/{name}"
        first = next((k for k in metrics if k.startswith(f"{split}/")), None)
        if first:
            return first
    return None


def describe_run(rd: Path) -> dict[str, Any]:
    """One row of ``archzoo runs``: where, what, how far, and the key result."""
    cfg, res = _config(rd), _results(rd)
    metrics = res.get("metrics") or {}
    if res:
        status = "finished" + (" (early stop)" if res.get("stopped_early") else "")
    else:
        last = rd / "checkpoints" / "LAST"
        status = f"stopped at {last.read_text().strip()}" if last.is_file() else "no checkpoint"
    key = key_metric(cfg, metrics)
    return {
        "run": str(rd),
        "recipe": cfg.get("recipe", "?"),
        "model": (cfg.get("model") or {}).get("name", "?"),
        "status": status,
        "epochs": res.get("epochs_run"),
        "seconds": res.get("train_seconds"),
        "metric": key,
        "value": metrics.get(key) if key else None,
        "metrics": metrics,
    }


def runs_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table."""
    head = ["run", "recipe", "model", "status", "epochs", "time (s)", "result"]
    body = []
    for r in rows:
        result = f"{r['metric']} {r['value']:.4g}" if r["value"] is not None else ""
        secs = f"{r['seconds']:.1f}" if r["seconds"] is not None else ""
        body.append([r["run"], r["recipe"], r["model"], r["status"], str(r["epochs"] or ""), secs, result])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    return "\n".join(lines)


def compare_runs(runs: list[Path], out_dir: Path) -> list[Path]:
    """One PNG per metric (``loss.png``, ``acc.png``...) with a line per run and split; returns the paths."""
    if len(runs) < 2:
        raise UserError("archzoo runs compare takes two or more run directories.")
    series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    labels = _labels(runs)
    for rd, label in zip(runs, labels, strict=True):
        csv = Path(rd) / "metrics.csv"
        if not csv.is_file():
            raise UserError(f"{rd} has no metrics.csv; is it a run directory?")
        for row in read_metrics(csv):
            for k, v in row.items():
                if "/" not in k or not isinstance(v, (int, float)) or k.startswith("test/"):
                    continue
                split, metric = k.split("/", 1)
                series[metric][f"{label} {split}"].append((float(row.get("epoch", 0)), float(v)))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric, lines in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for name, pts in sorted(lines.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, ls="-" if name.endswith("train") else "--")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if metric == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / f"{metric.replace('/', '_')}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    if not paths:
        raise UserError("The runs' metrics.csv files hold no train or val metrics to compare.")
    return paths


def _labels(runs: list[Path]) -> list[str]:
    """Short names that tell the runs apart: the run folder's name, with its recipe when names repeat."""
    names = [Path(r).name for r in runs]
    if len(set(names)) == len(names):
        return names
    return [f"{Path(r).parent.name}/{Path(r).name}" for r in runs]
