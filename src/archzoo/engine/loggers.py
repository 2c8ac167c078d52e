"""metrics.csv and TensorBoard, written by the main process only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import Tensor

from archzoo.engine.checkpoint import atomic_write_bytes
from archzoo.utils import parse_number, read_metrics  # noqa: F401 - read_metrics is the reader of these files

FIRST_COLUMNS = ["epoch", "step", "time"]


class MetricsLog:
    """Rows of ``<split>/<metric>`` values plus epoch, step and elapsed seconds, and TensorBoard.

    The whole table is rewritten atomically at each flush, so the file is
    always a complete CSV and its header grows as new metrics appear. Each
    numeric value of a row also goes to TensorBoard as a scalar through
    :class:`torch.utils.tensorboard.SummaryWriter`, whose queue is flushed with
    the table, so a killed run loses no logged step.

    Args:
        path: the metrics.csv file.
        tensorboard_dir: directory of the TensorBoard event files; None writes none.
        purge_step: on resume, the first step after the checkpoint: TensorBoard drops the
            events a killed run wrote at and after it, so resumed steps are not doubled.
    """

    def __init__(self, path: Path, tensorboard_dir: Path | None = None, purge_step: int | None = None) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = list(FIRST_COLUMNS)
        self.writer: Any = None  # a SummaryWriter, imported only when TensorBoard is on
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard_dir), purge_step=purge_step)

    def load(self, upto_step: int) -> None:
        """Read an existing metrics.csv, dropping rows written after step ``upto_step`` (resume)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                try:
                    if int(row["step"]) > upto_step:
                        continue
                except (KeyError, ValueError):
                    continue
                self.log({k: parse_number(v) for k, v in row.items() if v not in ("", None)}, tb=False, flush=False)

    def log(self, row: dict[str, Any], tb: bool = True, flush: bool = True) -> None:
        for k in row:
            if k not in self.columns:
                self.columns.append(k)
        self.rows.append(row)
        if tb and self.writer is not None:
            step = int(row.get("step", 0))
            for k, v in row.items():
                if k not in FIRST_COLUMNS and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, step)
        if flush:
            self.flush()

    def histograms(self, tensors: Iterable[tuple[str, Tensor]], step: int) -> None:
        """Write one TensorBoard histogram per ``(tag, tensor)`` at ``step`` and flush (nothing without TensorBoard).

        Non-finite entries are left out (a histogram has no bin for them); an all-non-finite tensor writes none.
        """
        if self.writer is None:
            return
        for tag, t in tensors:
            values = t.detach().float().flatten().cpu()
            values = values[values.isfinite()]
            if values.numel():
                self.writer.add_histogram(tag, values, int(step))
        self.writer.flush()

    def flush(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _fmt(v) for k, v in r.items()})
        atomic_write_bytes(self.path, buf.getvalue().encode())
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
