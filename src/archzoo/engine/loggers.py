"""metrics.csv and TensorBoard, written by the main process only."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from archzoo.engine.checkpoint import atomic_write_bytes
from archzoo.utils import parse_number, read_metrics  # noqa: F401 - read_metrics is the reader of these files

FIRST_COLUMNS = ["epoch", "step", "time"]


class MetricsLog:
    """Rows of ``<split>/<metric>`` values plus epoch, step and elapsed seconds.

    The whole table is rewritten atomically at each flush, so the file is
    always a complete CSV and its header grows as new metrics appear.
    """

    def __init__(self, path: Path, tensorboard_dir: Path | None = None, purge_step: int | None = None) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = list(FIRST_COLUMNS)
        self.writer: EventWriter | None = None
        if tensorboard_dir is not None:
            self.writer = EventWriter(Path(tensorboard_dir), purge_step=purge_step)

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


class EventWriter:
    """TensorBoard scalars written synchronously in the standard event-file format.

    Unlike torch's ``SummaryWriter`` there is no background thread and no
    two-minute flush interval: each scalar is on disk when ``log`` returns, so a
    killed run loses no event and a resumed run can purge what came after its
    checkpoint. The records use TensorBoard's own protobufs and record framing.

    Args:
        log_dir: directory of the events file.
        purge_step: on resume, tell TensorBoard to drop events at and after this step.
    """

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        import socket
        import time

        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        log_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.0"
        self._file = open(log_dir / name, "ab")  # noqa: SIM115 - closed in close()
        self._rw = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:
            log = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(event_pb2.Event(wall_time=time.time(), step=purge_step, session_log=log))

    def _write(self, event: Any) -> None:
        self._rw.write(event.SerializeToString())

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        import time

        from tensorboard.compat.proto import event_pb2, summary_pb2

        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
        self._write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
