"""metrics.csv and TensorBoard, and optionally MLflow and Weights & Biases, written by the main process only."""

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

    def __init__(
        self,
        path: Path,
        tensorboard_dir: Path | None = None,
        purge_step: int | None = None,
        sinks: list[Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.sinks = list(sinks or [])  # further loggers (MLflow, W&B) that take each new row
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
        if tb:
            for sink in self.sinks:
                sink.log(row)
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

    def close(self, status: str = "FINISHED") -> None:
        """Close every logger; ``status`` (FINISHED or FAILED) is what MLflow records for the run."""
        if self.writer is not None:
            self.writer.close()
        for sink in self.sinks:
            sink.close(status)


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    """The metrics of a row (``split/name`` keys with numeric values)."""
    return {k: float(v) for k, v in row.items() if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)}


class MlflowSink:
    """MLflow in the run's own SQLite store, ``sqlite:///RUN/mlflow.db`` (``log.mlflow=true``).

    The experiment is the recipe; the MLflow run id is kept in ``RUN/mlflow.json``, so a resumed
    training continues the same MLflow run. The config goes in as parameters one level deep (``optim.lr``, ``model.args``), every logged
    row as metrics at its optimizer step, and ``results.json`` and ``report.html`` as artifacts at the
    end. Steps the killed process had logged after its checkpoint are not logged twice (resume
    reproduces them exactly). Browse with ``mlflow ui --backend-store-uri sqlite:///RUN/mlflow.db``.
    """

    def __init__(self, run_dir: Path, cfg: Any, resume: bool) -> None:
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            from archzoo.errors import UserError

            raise UserError("log.mlflow=true needs MLflow: pip install 'archzoo[loggers]' (or mlflow).") from None
        import json
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)
        self._metric = Metric
        self.run_dir = Path(run_dir)
        self.uri = f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=self.uri)
        ids = self.run_dir / "mlflow.json"
        self.logged: dict[str, int] = {}  # the last step of each metric already in the store
        if resume and ids.is_file():
            self.run_id = json.loads(ids.read_text())["run_id"]
            for key in self.client.get_run(self.run_id).data.metrics:
                hist = self.client.get_metric_history(self.run_id, key)
                self.logged[key] = max((m.step for m in hist), default=-1)
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            name = cfg.recipe or "custom"
            exp = self.client.get_experiment_by_name(name)
            art = (self.run_dir / "mlartifacts").resolve().as_uri()
            exp_id = exp.experiment_id if exp else self.client.create_experiment(name, artifact_location=art)
            self.run_id = self.client.create_run(exp_id, run_name=self.run_dir.name).info.run_id
            from archzoo.engine.resume import flat_config

            params = [Param(k, str(v)[:500]) for k, v in flat_config(cfg.to_dict()).items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[i : i + 100])
            atomic_write_bytes(ids, json.dumps({"run_id": self.run_id, "tracking_uri": self.uri}).encode())

    def log(self, row: dict[str, Any]) -> None:
        import time

        step = int(row.get("step", 0))
        now = int(time.time() * 1000)
        fresh = [self._metric(k, v, now, step) for k, v in _numbers(row).items() if step > self.logged.get(k, -1)]
        if fresh:
            self.client.log_batch(self.run_id, metrics=fresh)

    def close(self, status: str) -> None:
        if status == "FINISHED":
            for name in ("results.json", "report.html"):
                if (self.run_dir / name).is_file():
                    self.client.log_artifact(self.run_id, str(self.run_dir / name))
        self.client.set_terminated(self.run_id, status)


class WandbSink:
    """Weights & Biases in offline mode under ``RUN/wandb`` (``log.wandb=true``); ``wandb sync`` uploads it.

    The run id is the run directory's name and is resumed with ``resume="allow"``; W&B itself drops
    rows at steps it already holds.
    """

    def __init__(self, run_dir: Path, cfg: Any, resume: bool) -> None:
        try:
            import wandb
        except ImportError:
            from archzoo.errors import UserError

            raise UserError(
                "log.wandb=true needs Weights & Biases: pip install 'archzoo[loggers]' (or wandb)."
            ) from None
        import re

        run_dir = Path(run_dir)
        rid = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{cfg.recipe}-{run_dir.name}")[-64:]
        self.run = wandb.init(
            project=cfg.recipe or "archzoo",
            dir=str(run_dir),
            mode="offline",
            id=rid,
            name=run_dir.name,
            resume="allow",
            config=cfg.to_dict(),
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )

    def log(self, row: dict[str, Any]) -> None:
        values = _numbers(row)
        if values:
            self.run.log({**values, "epoch": float(row.get("epoch", 0))}, step=int(row.get("step", 0)))

    def close(self, status: str) -> None:
        import wandb

        self.run.finish(exit_code=0 if status == "FINISHED" else 1)
        wandb.teardown()  # stops W&B's service process, which writes the offline records out first


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
