"""Loss and metric curves from a run's metrics.csv, as PNG files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from archzoo.utils import read_metrics


def plot_curves(metrics_csv: Path, out_dir: Path) -> list[Path]:
    """Write one PNG per metric name (``loss.png``, ``acc.png``...) with a line per split.

    Train rows logged every N steps are drawn against their fractional epoch;
    validation rows once per epoch. Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric, splits in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        for split, pts in sorted(splits.items()):
            pts.sort()
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], label=split, marker="o" if split != "train" else None, ms=3
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if metric == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        p = out_dir / f"{metric}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths
