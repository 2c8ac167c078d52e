"""A run directory opened for use, and training from Python.

:func:`load_run` opens a finished (or interrupted) run for ``eval``, ``predict``,
``sample``, ``score`` and ``viz``: it reads the resolved config and the data's
facts (``info.json``), builds the model and the task, and loads the weights. It
creates no optimizer, no process group and no precision probe; the data is built
only when something reads :attr:`Run.data`.

:func:`train` trains a recipe from Python and returns the finished :class:`Run`::

    import archzoo
    run = archzoo.train("digits-mlp", train={"epochs": 2})
    run.evaluate("test")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from archzoo.config import Config, load_config
from archzoo.data.splits import DataBundle
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.builders import build_data, build_model, build_task, load_info, resolve_device
from archzoo.engine.evaluation import evaluate_split
from archzoo.errors import UserError
from archzoo.tasks.base import Task

WEIGHTS = ("final", "best", "last", "raw")


class Run:
    """One run directory with its config, model (weights loaded) and task.

    Attributes:
        run_dir: the directory.
        cfg: the resolved config the run was trained with.
        info: the data's facts (``num_classes``, ``vocab_size``, ``classes``...).
        model: the model, in eval mode, holding the chosen weights.
        task: the task, set up for the model and device.
        device: where the model lives (``train.device`` of the run, ``auto`` picks a GPU if any).
        epoch, batch_in_epoch: how far the loaded weights were trained (for ``last``/``raw``).
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: Config,
        info: dict[str, Any],
        model: nn.Module,
        task: Task,
        device: torch.device,
        data_dir: str | None = None,
        data: DataBundle | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.cfg = cfg
        self.info = info
        self.model = model
        self.task = task
        self.device = device
        self.data_dir = data_dir
        self._data = data
        self.epoch = cfg.train.epochs
        self.batch_in_epoch = 0
        self.memory_format = torch.channels_last if cfg.model.channels_last else None

    @property
    def data(self) -> DataBundle:
        """The run's dataset, built on first use (on the run's device when ``data.on_device``)."""
        if self._data is None:
            bundle = build_data(self.cfg, self.data_dir)
            if self.cfg.data.on_device and self.device.type != "cpu":
                bundle = bundle.to(self.device)
            self._data = bundle
        return self._data

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """The task's metrics of the loaded weights on ``split`` (``train``, ``val`` or ``test``)."""
        return evaluate_split(
            self.model,
            self.task,
            self.data.split(split),
            split,
            self.cfg.data.eval_batch,
            self.device,
            memory_format=self.memory_format,
        )

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r}, recipe={self.cfg.recipe!r}, model={self.cfg.model.name!r})"


def load_run(run: str | Path, data_dir: str | None = None, weights: str = "final") -> Run:
    """Open a run directory, its model holding the ``final``, ``best``, ``last`` or ``raw`` weights.

    ``final`` is ``model.safetensors`` (the weights the run's test figures come from), ``best`` the
    best validation checkpoint, ``last`` the last full checkpoint (its weight average when the run
    keeps one, as the run would have saved it), and ``raw`` that checkpoint's own unaveraged weights.
    """
    from archzoo.engine.trainer import EMA_FILE

    if weights not in WEIGHTS:
        raise UserError(f"weights must be one of {', '.join(WEIGHTS)}, got '{weights}'.")
    rd = Path(run)
    if not (rd / "config.yaml").is_file():
        raise UserError(f"{rd} is not a run directory (it has no config.yaml).")
    cfg = load_config(None, rd / "config.yaml")
    cfg.log.progress = "none"
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    info = load_info(rd)
    data = None
    if info is None:  # a run written before info.json: the data's facts come from the data
        data = build_data(cfg, data_dir)
        info = dict(data.info)
    model = build_model(cfg, info, pretrained=False).to(device)  # the run's own weights come next
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-arg]
    task = build_task(cfg)
    task.setup(model, info, device)
    r = Run(rd, cfg, info, model, task, device, data_dir, data)
    if weights in ("last", "raw"):
        last = ckpt.latest_checkpoint(rd / "checkpoints")
        if last is None:
            raise UserError(f"Run {rd} has no checkpoint.")
        state, loop = ckpt.load_checkpoint(last)
        src = last
        averaged = ckpt.load_extra_weights(last, EMA_FILE) if weights == "last" else None
        if averaged is not None:  # the weights the run would have saved
            state = averaged
        # Say how far these weights were trained: the checkpoint may be older than cfg.train.epochs.
        r.epoch, r.batch_in_epoch = int(loop.get("epoch", 0)), int(loop.get("batch_in_epoch", 0))
    else:
        src = rd / ("model.safetensors" if weights == "final" else "checkpoints/best.safetensors")
        if not src.is_file():
            raise UserError(f"Run {rd} has no {src.name}; it may not have finished (try --weights last).")
        state = ckpt.load_weights_file(src)
    ckpt.load_into(model, state, src)
    model.eval()
    return r


def _overrides(nested: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"epochs": 2}}`` and ``{"train.epochs": 2}`` as ``["train.epochs=2"]``."""
    import yaml

    out: list[str] = []
    for k, v in nested.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key.count(".") < 1:
            out += _overrides(v, key + ".")
        else:
            out.append(f"{key}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
    return out


def train(
    recipe: str | None = None,
    *,
    config: str | Path | None = None,
    run_dir: str | Path | None = None,
    data_dir: str | None = None,
    overrides: list[str] | None = None,
    **groups: Any,
) -> Run:
    """Train a recipe through the engine and return the finished run.

    Args:
        recipe: a shipped recipe (``archzoo list recipes``).
        config: a YAML config applied over the recipe (``RUN/config.yaml`` reproduces a run).
        run_dir: where to write (default ``runs/<recipe>/<timestamp>``).
        data_dir: the data root (else ``ARCHZOO_DATA``, else a cache directory).
        overrides: dotted overrides as on the command line (``["optim.lr=3e-3"]``).
        groups: the same as keyword groups, ``train={"epochs": 2}, optim={"lr": 3e-3}``.
    """
    from archzoo.engine.trainer import Trainer

    if not recipe and not config:
        raise UserError("Name a recipe (archzoo list recipes) or pass config=FILE.")
    cfg = load_config(recipe, config, [*_overrides(groups), *(overrides or [])])
    trainer = Trainer(cfg, run_dir=Path(run_dir) if run_dir else None, data_dir=data_dir)
    trainer.fit()
    r = Run(trainer.run_dir, cfg, trainer.info, trainer.model, trainer.task, trainer.device, data_dir, trainer.data)
    trainer.model.eval()
    return r
