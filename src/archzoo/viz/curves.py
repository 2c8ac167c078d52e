"""Loss and metric curves from a run's metrics.csv, as PNG files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from archzoo.utils import read_metrics
from archzoo.viz.figure import save_figure


def curve_series(metrics_csv: Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{metric: {split: [(epoch, value), ...]}}`` of a metrics.csv, test rows left out, sorted by epoch."""
    rows = read_metrics(Path(metrics_csv))
    series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for k, v in r.items():
            if "/" not in k or not isinstance(v, (int, float)):
                continue
            split, metric = k.split("/", 1)
            if split == "test":
                continue
            series[metric][split].append((float(r.get("epoch", 0)), float(v)))
    for splits in series.values():
        for pts in splits.values():
            pts.sort()
    return series


def _draw(ax: Any, metric: str, splits: dict[str, list[tuple[float, float]]]) -> None:
    for split, pts in sorted(splits.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=split, marker="o" if split != "train" else None, ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    if metric == "lr" and all(p[1] > 0 for pts in splits.values() for p in pts):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()


def plot_curves(metrics_csv: Path, out_dir: Path) -> list[Path]:
    """Write one PNG per metric name (``loss.png``, ``acc.png``...) with a line per split.

    Train rows logged every N steps are drawn against their fractional epoch;
    validation rows once per epoch. Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = curve_series(metrics_csv)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric, splits in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        _draw(ax, metric, splits)
        fig.tight_layout()
        p = out_dir / f"{metric}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths


def plot_curves_grid(metrics_csv: Path, path: Path, columns: int = 3) -> Path | None:
    """All the curves of :func:`plot_curves` as panels of one PNG (None when there are none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = curve_series(metrics_csv)
    if not series:
        return None
    n = len(series)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), dpi=80, squeeze=False)
    for ax, (metric, splits) in zip(axes.flat, sorted(series.items()), strict=False):
        _draw(ax, metric, splits)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return save_figure(fig, path)
