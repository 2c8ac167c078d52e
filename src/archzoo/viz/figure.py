"""The one way a figure leaves archzoo: laid out, its folder made, saved, and closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_figure(fig: Any, path: str | Path, *, dpi: float | None = None, tight: bool = True, **savefig: Any) -> Path:
    """Save ``fig`` to ``path`` (parent folders made) and close it if pyplot made it, so long runs keep no
    figure open. A bare ``matplotlib.figure.Figure`` is left to the garbage collector, without pyplot.

    Args:
        fig: a matplotlib figure.
        path: where it goes; the format follows the suffix unless ``format=`` is given.
        dpi: dots per inch (None: matplotlib's ``savefig.dpi``).
        tight: ``fig.tight_layout()`` first.
        savefig: further keyword arguments for ``Figure.savefig``.
    """
    path = Path(path)
    if tight:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, **savefig)
    if getattr(fig.canvas, "manager", None) is not None:  # made by pyplot, which keeps it until closed
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
