"""Progress: a live bar (throughput, loss, ETA) on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


def _fmt_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())


class Progress:
    """Reports training progress on stderr.

    Args:
        mode: auto (bar when stderr is a terminal, else lines), bar, lines or none.
        enabled: False on non-main ranks.
    """

    def __init__(self, mode: str = "auto", enabled: bool = True) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode if enabled else "none"
        self._bar: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._seen = 0
        self._loss: float | None = None

    def start_epoch(self, epoch: int, epochs: int, total_batches: int) -> None:
        self._t0 = time.perf_counter()
        self._seen = 0
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn(f"epoch {epoch + 1}/{epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                transient=True,
                console=Console(stderr=True),  # stdout is for data
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=total_batches, info="")

    def update(self, samples: int, loss: float | None = None) -> None:
        self._seen += samples
        if loss is not None:
            self._loss = loss
        if self._bar is not None:
            rate = self._seen / max(time.perf_counter() - self._t0, 1e-9)
            info = f"{rate:,.0f} samples/s" + (f"  loss {self._loss:.4f}" if self._loss is not None else "")
            self._bar.update(self._task, advance=1, info=info)

    def end_epoch(self, epoch: int, epochs: int, metrics: dict[str, float], note: str = "") -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self.mode in ("bar", "lines"):
            dt = time.perf_counter() - self._t0
            rate = self._seen / max(dt, 1e-9)
            line = f"epoch {epoch + 1}/{epochs}  {_fmt_metrics(metrics)}  {dt:.1f}s ({rate:,.0f} samples/s){note}"
            print(line, file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if self.mode != "none":
            print(text, file=sys.stderr, flush=True)
