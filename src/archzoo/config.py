"""Typed configs grouped by concern, YAML recipes and dotted overrides.

A :class:`Config` has six groups: ``data``, ``model``, ``task``, ``optim``,
``train`` and ``log``, and a ``tune`` section that only ``archzoo tune`` reads.
Recipes are YAML files shipped in ``archzoo/recipes``;
``archzoo train RECIPE optim.lr=3e-3 train.epochs=5`` overrides them. Each group
validates itself in ``__post_init__`` and every problem is one sentence.
Free-form argument dicts (``model.args``, ``data.args``, ``task.args``) take any
key; the builder they are passed to rejects the ones it does not know.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from archzoo.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DEFAULT_BATCH = 128
DEFAULT_EVAL_BATCH = 1024
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad", "nadam")
SCHEDULERS = ("none", "step", "exponential", "cosine", "plateau", "onecycle", "warmup_cosine")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise UserError(msg)


@dataclass
class DataConfig:
    """Which dataset and how it is batched.

    Args:
        name: a registered dataset (``archzoo list datasets``).
        dir: the data root; ``None`` uses ``--data-dir``, then ``ARCHZOO_DATA``, then a cache dir.
        batch_size: global training batch (split across ranks under DDP); None: 128, or the split
            kind's own batching (one full graph is one batch, and refuses a batch size).
        eval_batch_size: batch for validation and test; None: 1024.
        val_fraction: share of the training data held out for validation (fixed seed); None: the
            dataset's default. A dataset that holds a fixed split refuses it.
        augment: batched augmentations, e.g. ``{crop_padding: 2, flip: true, cutout: 8}``.
        args: further keyword arguments of the dataset builder.
        on_device: keep the whole dataset on the training device.
    """

    name: str = "digits"
    dir: str | None = None
    batch_size: int | None = None
    eval_batch_size: int | None = None
    val_fraction: float | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    on_device: bool = True

    def __post_init__(self) -> None:
        _check(
            self.batch_size is None or self.batch_size >= 1,
            f"data.batch_size must be at least 1, got {self.batch_size}.",
        )
        _check(
            self.eval_batch_size is None or self.eval_batch_size >= 1,
            f"data.eval_batch_size must be at least 1, got {self.eval_batch_size}.",
        )
        _check(
            self.val_fraction is None or 0.0 <= self.val_fraction < 1.0,
            f"data.val_fraction must be in [0, 1), got {self.val_fraction}.",
        )

    @property
    def train_batch(self) -> int:
        """The training batch in use (``batch_size``, else the default 128)."""
        return self.batch_size if self.batch_size is not None else DEFAULT_BATCH

    @property
    def eval_batch(self) -> int:
        """The evaluation batch in use (``eval_batch_size``, else the default 1024)."""
        return self.eval_batch_size if self.eval_batch_size is not None else DEFAULT_EVAL_BATCH


@dataclass
class ModelConfig:
    """Which model and how it is built.

    Args:
        name: a registered model (``archzoo list models``).
        args: keyword arguments of the model builder.
        init: weight initialisation: default, kaiming, kaiming_uniform, xavier,
            xavier_uniform, orthogonal or normal.
        channels_last: keep 4-D activations in NHWC memory order.
        compile: wrap the model with ``torch.compile``.
        pretrained: weights to start from: a safetensors or torch state-dict file, an archzoo
            run directory, or a folder holding one weights file (a local hub cache); head
            tensors whose shapes differ start fresh (see :mod:`archzoo.engine.pretrained`).
        freeze: ``none``, or ``backbone`` to train only the classifier head (the model's
            ``classifier_name``); frozen batch norms keep their running statistics.
        unfreeze_after: with ``freeze=backbone``, the epoch count after which the last stage
            (``model.stages[-1]``) trains too; 0 never unfreezes.
        backbone_lr: learning rate of the parameters outside the head; None uses ``optim.lr``.
        grad_checkpointing: recompute each block's activations in the backward pass instead of
            keeping them (:func:`torch.utils.checkpoint.checkpoint`): less memory, one more forward
            per block; models without a ``set_grad_checkpointing`` method refuse it.
    """

    name: str = "mlp"
    args: dict[str, Any] = field(default_factory=dict)
    init: str = "default"
    channels_last: bool = False
    compile: bool = False
    pretrained: str | None = None
    freeze: str = "none"
    unfreeze_after: int = 0
    backbone_lr: float | None = None
    grad_checkpointing: bool = False

    def __post_init__(self) -> None:
        from archzoo.layers.init import INIT_SCHEMES

        _check(self.init in INIT_SCHEMES, f"model.init must be one of {', '.join(INIT_SCHEMES)}, got '{self.init}'.")
        _check(self.freeze in ("none", "backbone"), f"model.freeze must be none or backbone, got '{self.freeze}'.")
        _check(self.unfreeze_after >= 0, f"model.unfreeze_after must be non-negative, got {self.unfreeze_after}.")
        _check(
            self.unfreeze_after == 0 or self.freeze == "backbone",
            "model.unfreeze_after only applies with model.freeze=backbone.",
        )
        _check(
            self.backbone_lr is None or self.backbone_lr > 0,
            f"model.backbone_lr must be positive, got {self.backbone_lr}.",
        )


@dataclass
class TaskConfig:
    """The objective: a registered task (``classification``, ``regression``, ...) and its arguments."""

    name: str = "classification"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """Optimizer, penalties and learning-rate schedule.

    ``name``, ``lr`` and ``betas`` left unset (None) take the task's default for each optimizer
    slot (a GAN's Adam at 2e-4 with betas (0.5, 0.999)), else adamw, 1e-3 and (0.9, 0.999).
    ``slots`` sets any of these fields for one slot of a task with several optimizers:
    ``optim.slots.generator.lr=2e-4`` wins over ``optim.lr``, which wins over the task's default.

    Args:
        name: sgd, momentum (SGD with ``momentum``, 0.9 by default), rmsprop, adam, adamw, adagrad or nadam.
        lr: learning rate (the peak for onecycle and warmup_cosine).
        weight_decay: decoupled for adamw, L2-in-gradient for the others; never on biases and norms.
        momentum: momentum for sgd, momentum and rmsprop.
        nesterov: Nesterov momentum for sgd.
        betas: Adam-family betas.
        eps: Adam-family and RMSprop epsilon.
        l1: weight of an L1 penalty on weights added to the loss.
        l2: weight of an L2 penalty on weights added to the loss.
        scheduler: none, step, exponential, cosine, plateau, onecycle or warmup_cosine.
        step_size: epochs between decays for ``step``.
        gamma: decay factor for step, exponential and plateau.
        warmup_epochs: linear warmup length for warmup_cosine (fractions allowed).
        warmup_steps: the same warmup in optimizer steps (instead of ``warmup_epochs``).
        min_lr: floor of cosine schedules.
        plateau_patience: epochs without improvement before plateau decays.
        pct_start: rising share of a onecycle schedule.
        weight_max_norm: after each step, rescale every output unit's incoming weights (dim 0 of
            a Linear, Conv or Embedding weight, dim 1 of a transposed conv's) to an L2 norm of at
            most this; biases and norms untouched; 0 or None disables.
        slots: per-slot settings, ``{slot: {field: value}}`` (see above).
    """

    name: str | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] | None = None
    eps: float = 1e-8
    l1: float = 0.0
    l2: float = 0.0
    scheduler: str = "none"
    step_size: int = 10
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup_steps: int = 0
    min_lr: float = 0.0
    plateau_patience: int = 3
    pct_start: float = 0.25
    weight_max_norm: float | None = None
    slots: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(
            self.name is None or self.name in OPTIMIZERS,
            f"optim.name must be one of {', '.join(OPTIMIZERS)}, got '{self.name}'.",
        )
        _check(
            self.name != "momentum" or self.momentum > 0,
            f"optim.name=momentum needs optim.momentum > 0, got {self.momentum}; use optim.name=sgd for plain SGD.",
        )
        _check(
            self.scheduler in SCHEDULERS,
            f"optim.scheduler must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'.",
        )
        _check(self.lr is None or self.lr > 0, f"optim.lr must be positive, got {self.lr}.")
        _check(self.weight_decay >= 0, f"optim.weight_decay must be non-negative, got {self.weight_decay}.")
        _check(self.l1 >= 0 and self.l2 >= 0, "optim.l1 and optim.l2 must be non-negative.")
        _check(self.betas is None or len(self.betas) == 2, f"optim.betas needs two numbers, got {self.betas}.")
        _check(0 < self.pct_start < 1, f"optim.pct_start must be in (0, 1), got {self.pct_start}.")
        _check(self.step_size >= 1, f"optim.step_size must be at least 1, got {self.step_size}.")
        _check(self.warmup_steps >= 0, f"optim.warmup_steps must be non-negative, got {self.warmup_steps}.")
        _check(
            self.weight_max_norm is None or self.weight_max_norm >= 0,
            f"optim.weight_max_norm must be non-negative (0 or null disables), got {self.weight_max_norm}.",
        )
        _check(
            not (self.warmup_steps and self.warmup_epochs),
            "Set optim.warmup_steps or optim.warmup_epochs, not both.",
        )
        names = [f.name for f in fields(self) if f.name != "slots"]
        for slot, settings in self.slots.items():
            _check(isinstance(settings, dict), f"optim.slots.{slot} must be a mapping of optim settings.")
            for k in settings:
                _check(k in names, f"Unknown config key 'optim.slots.{slot}.{k}'; a slot takes: {', '.join(names)}.")
            # Each slot's settings are validated as a whole optimizer config of their own.
            _build(OptimConfig, {**{k: getattr(self, k) for k in names}, **settings}, f"optim.slots.{slot}")

    def for_slot(self, slot: str, task_defaults: dict[str, Any] | None = None) -> OptimConfig:
        """The settings of optimizer ``slot``: ``slots.<slot>`` over these over the task's defaults.

        The result has name, lr and betas set (no None) and no slots of its own.
        """
        names = [f.name for f in fields(self) if f.name != "slots"]
        own = self.slots.get(slot, {})
        defaults = task_defaults or {}
        fallback = {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.999]}
        raw: dict[str, Any] = {}
        for k in names:
            if k in own:
                raw[k] = own[k]
            elif getattr(self, k) is not None:
                raw[k] = getattr(self, k)
            elif k in defaults:
                raw[k] = list(defaults[k]) if k == "betas" else defaults[k]
            else:
                raw[k] = fallback.get(k)  # None for the fields whose None means off (weight_max_norm)
        unknown = sorted(set(defaults) - set(names))
        if unknown:
            raise TypeError(f"task optimizer defaults name unknown settings: {', '.join(unknown)}")
        return _build(OptimConfig, raw, f"optim.slots.{slot}")


@dataclass
class TrainConfig:
    """The loop.

    Args:
        epochs: passes over the training data.
        seed: seeds Python, NumPy, torch and the loader order.
        deterministic: ask torch for deterministic kernels.
        device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.
        precision: fp32, bf16 (autocast), fp16 (autocast and GradScaler, CUDA) or auto
            (bf16 on CUDA where supported, else fp16; on CPU, bf16 only if a short probe finds it faster).
        grad_accum: micro-batches per optimizer step.
        grad_clip: maximum global gradient norm; 0 disables.
        monitor: metric that selects the best checkpoint (default: the task's).
        mode: min or max for ``monitor`` (default: the task's).
        early_stopping: validations without improvement before stopping; 0 disables.
        min_delta: smallest change of ``monitor`` that counts as improvement.
        log_every: optimizer steps between train-metric rows.
        eval_every: optimizer steps between validations, besides those at epoch ends; 0: epoch ends only.
        eval_epoch_end: validate at the end of each epoch (with ``eval_every``, false validates by steps alone).
        checkpoint_every: how often a full checkpoint is written: ``epoch`` (each epoch's end, the
            default; also ``0``), ``N epochs``, ``N`` or ``N steps`` (every N optimizer steps and at
            each epoch's end), or ``N s`` (at the first step after N seconds since the last one).
            The end of training always writes one.
        max_steps: stop after this many optimizer steps (the schedules are sized to it); 0 means no limit.
        max_time: seconds of training after which the run stops, checked at every validation
            (and tests the best weights as usual); 0 means no limit.
        threads: torch intra-op threads; 0 leaves torch's default.
        ema_decay: keep an exponential moving average of the weights with this decay (0.999 averages
            over about the last thousand steps); evaluation, the best checkpoint and the saved model
            use the average (see :mod:`archzoo.engine.ema`); 0 disables.
        log_grad_norm: log the global gradient norm before clipping (after unscaling under fp16),
            averaged over the optimizer steps since the last row, as ``train/grad_norm``
            (``train/grad_norm_<slot>`` for tasks with several optimizers).
        log_histograms: every N optimizer steps, write TensorBoard histograms of each parameter
            (``weights/<name>``) and of its gradient (``grads/<name>``); 0 disables.
        skip_nonfinite: skip an optimizer step whose loss or gradients are NaN or infinite (no
            update, no scheduler or EMA step, optimizer state and the model's buffers as before the
            batch) and count it (``train/skipped_steps``, ``results.json``), instead of stopping
            with the first bad step named. It costs one host sync per step; the default check none.
    """

    epochs: int = 10
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    precision: str = "fp32"
    grad_accum: int = 1
    grad_clip: float = 0.0
    monitor: str | None = None
    mode: str | None = None
    early_stopping: int = 0
    min_delta: float = 0.0
    log_every: int = 50
    eval_every: int = 0
    eval_epoch_end: bool = True
    checkpoint_every: str = "epoch"
    max_steps: int = 0
    max_time: float = 0.0
    threads: int = 0
    ema_decay: float = 0.0
    log_grad_norm: bool = False
    log_histograms: int = 0
    skip_nonfinite: bool = False

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"train.epochs must be at least 1, got {self.epochs}.")
        _check(
            self.precision in PRECISIONS,
            f"train.precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'.",
        )
        _check(self.grad_accum >= 1, f"train.grad_accum must be at least 1, got {self.grad_accum}.")
        _check(self.grad_clip >= 0, f"train.grad_clip must be non-negative, got {self.grad_clip}.")
        _check(self.mode in (None, "min", "max"), f"train.mode must be min or max, got '{self.mode}'.")
        _check(self.early_stopping >= 0, "train.early_stopping must be non-negative.")
        _check(self.log_every >= 1, f"train.log_every must be at least 1, got {self.log_every}.")
        _check(self.max_steps >= 0, "train.max_steps must be non-negative.")
        _check(self.eval_every >= 0, f"train.eval_every must be non-negative, got {self.eval_every}.")
        _check(
            self.eval_epoch_end or self.eval_every > 0,
            "train.eval_epoch_end=false needs train.eval_every=N steps, or the run would never validate.",
        )
        self.checkpoint_schedule()  # validates the spelling
        _check(self.max_time >= 0, f"train.max_time must be non-negative seconds, got {self.max_time}.")
        _check(0 <= self.ema_decay < 1, f"train.ema_decay must be in [0, 1), got {self.ema_decay}.")
        _check(
            self.log_histograms >= 0,
            f"train.log_histograms must be a non-negative number of steps (0 disables), got {self.log_histograms}.",
        )
        dev = self.device
        _check(
            dev in ("auto", "cpu", "cuda", "mps") or dev.startswith("cuda:"),
            f"train.device must be auto, cpu, cuda, cuda:N or mps, got '{dev}'.",
        )

    def checkpoint_schedule(self) -> tuple[str, float]:
        """``checkpoint_every`` as ``(unit, every)`` with unit ``epochs``, ``steps`` or ``seconds``."""
        import re

        text = str(self.checkpoint_every).strip().lower()
        if text in ("epoch", "0", ""):
            return "epochs", 1
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(epochs?|e|steps?|s|sec|seconds?)?", text)
        unit = {"e": "epochs", "epoch": "epochs", "epochs": "epochs", "s": "seconds", "sec": "seconds"}
        unit.update({"second": "seconds", "seconds": "seconds", "step": "steps", "steps": "steps", None: "steps"})
        if m is None or float(m.group(1)) <= 0:
            raise UserError(
                f"train.checkpoint_every must be epoch, 'N epochs', N or 'N steps', or 'N s' (seconds), "
                f"got '{self.checkpoint_every}'."
            )
        kind = unit[m.group(2)]
        every = float(m.group(1))
        if kind != "seconds" and not every.is_integer():
            raise UserError(f"train.checkpoint_every needs a whole number of {kind}, got '{self.checkpoint_every}'.")
        return kind, every


@dataclass
class LogConfig:
    """Where runs go and what they record.

    Args:
        dir: parent of run directories (``<dir>/<recipe>/<timestamp>``).
        tensorboard: write TensorBoard event files.
        plots: draw at the end: the loss and metric curves as PNG, and the report's figures (confusion
            matrix, maps); with false the report holds tables, the config and pictures already drawn.
        progress: auto (a bar on a terminal, epoch lines otherwise), bar, lines or none.
        report: write ``report.html`` (``archzoo report``) at the end of training.
        mlflow: also log to MLflow, in the run's own SQLite store ``sqlite:///RUN/mlflow.db``.
        wandb: also log to Weights & Biases, in offline mode under ``RUN/wandb`` (``wandb sync`` uploads it).
    """

    dir: str = "runs"
    tensorboard: bool = True
    plots: bool = True
    progress: str = "auto"
    report: bool = True
    mlflow: bool = False
    wandb: bool = False

    def __post_init__(self) -> None:
        _check(
            self.progress in ("auto", "bar", "lines", "none"),
            f"log.progress must be auto, bar, lines or none, got '{self.progress}'.",
        )


TUNE_TYPES = ("loguniform", "uniform", "float", "int", "categorical")


@dataclass
class TuneConfig:
    """The search space of ``archzoo tune`` (see :mod:`archzoo.engine.tuning`); training ignores it.

    Args:
        metric: the validation metric a trial is scored by (``val/acc``); None: the task's monitor.
        direction: ``maximize`` or ``minimize``; None: from the task's mode.
        space: dotted override keys mapped to a distribution: ``{type: loguniform, low, high}``,
            ``{type: uniform|float, low, high}``, ``{type: int, low, high}`` (both ends included;
            ``step`` and ``log`` optional for int and float) or ``{type: categorical, choices: [...]}``.
    """

    metric: str | None = None
    direction: str | None = None
    space: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(
            self.direction in (None, "maximize", "minimize"),
            f"tune.direction must be maximize or minimize, got '{self.direction}'.",
        )
        for key, spec in self.space.items():
            where = f"tune.space.{key}"
            _check(
                isinstance(spec, dict),
                f"{where} must be a mapping such as {{type: loguniform, low: 1e-4, high: 1e-1}}.",
            )
            kind = spec.get("type")
            _check(
                kind in TUNE_TYPES, f"{where} has type {kind!r}; a search-space type is one of {', '.join(TUNE_TYPES)}."
            )
            allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "step", "log"}
            extra = sorted(set(spec) - allowed)
            _check(
                not extra,
                f"{where} ({kind}) does not take '{extra[0] if extra else ''}'; it takes: {', '.join(sorted(allowed))}.",
            )
            if kind == "categorical":
                choices = spec.get("choices")
                _check(
                    isinstance(choices, list) and len(choices) >= 1,
                    f"{where} (categorical) needs a non-empty list of choices.",
                )
                continue
            spec = self.space[key] = dict(spec)
            for end in ("low", "high", "step"):  # YAML reads 1e-4 (no dot) as a string
                if isinstance(spec.get(end), str):
                    with contextlib.suppress(ValueError):
                        spec[end] = float(spec[end])
            low, high = spec.get("low"), spec.get("high")
            num = (int, float)
            _check(
                isinstance(low, num) and isinstance(high, num) and not isinstance(low, bool) and low < high,
                f"{where} needs numbers low < high, got low={low!r}, high={high!r}.",
            )
            if kind == "int":
                _check(float(low).is_integer() and float(high).is_integer(), f"{where} (int) needs whole low and high.")
            if kind == "loguniform" or spec.get("log"):
                _check(low > 0, f"{where} is searched on a log scale and needs low > 0, got {low}.")


@dataclass
class AnchorConfig:
    """A published figure the recipe is compared with (the run report shows it beside the result).

    Args:
        metric: the result it compares with (``test/acc``).
        value: the published value, in the metric's own units (0.925 for 92.5%).
        source: who reported it, and where.
    """

    metric: str = ""
    value: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        _check(
            self.value is None or (bool(self.metric) and "/" in self.metric),
            f"anchor.metric must name a result such as test/acc, got '{self.metric}'.",
        )


@dataclass
class Config:
    """A whole experiment: what ``archzoo train`` runs and saves as ``config.yaml``."""

    recipe: str = "custom"
    description: str = ""
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


# ----------------------------------------------------------------------------- building from dicts


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; numbers written as strings (``1e-3``) are accepted."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except UserError as e:
                errors.append(e)
        raise errors[0] if errors else UserError(f"{where} cannot be {value!r}.")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where} must be true or false, got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where} must be an integer, got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise UserError(f"{where} must be a number, got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{where} must be a string, got {value!r}.")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list, got {value!r}.")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise UserError(f"{where} must be a mapping, got {value!r}.")
        return dict(value)
    if _is_dataclass_type(tp):
        return _build(tp, value, where)
    return value


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{where or 'the config'} must be a mapping, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(f"Unknown config key '{prefix}{unknown[0]}'; {where or 'the config'} has: {', '.join(names)}.")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a wrong type slipped past into a comparison
        raise UserError(f"Invalid value in {where or 'the config'}: {e}.") from None


def config_from_dict(raw: dict[str, Any]) -> Config:
    return _build(Config, raw, "")


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-parsed value."""
    if "=" not in item:
        raise UserError(f"Override '{item}' must look like key.sub=value (e.g. optim.lr=3e-3).")
    key, _, text = item.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise UserError(f"Override '{item}' has an empty key.")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a plain config dict (before it is typed and validated)."""
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for p in path[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise UserError(f"Override '{item}': '{p}' is not a group of keys.")
            node = nxt
        node[path[-1]] = value
    return raw


# ----------------------------------------------------------------------------- recipes


def _recipe_dir() -> Any:
    return resources.files("archzoo") / "recipes"


def recipe_names() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in _recipe_dir().iterdir() if p.name.endswith(".yaml"))


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"Config file {p} does not exist.")
    try:
        raw = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"Config file {p} is not valid YAML ({str(e).splitlines()[0]}).") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"Config file {p} must hold a mapping of config groups.")
    return raw


def recipe_dict(name: str) -> dict[str, Any]:
    """The raw dict of a shipped recipe, with ``recipe`` set to its name."""
    res = _recipe_dir() / f"{name}.yaml"
    if not res.is_file():
        import difflib

        close = difflib.get_close_matches(name, recipe_names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " Run 'archzoo list recipes' to see them."
        raise UserError(f"Unknown recipe '{name}'.{hint}")
    raw = yaml.safe_load(res.read_text()) or {}
    raw.setdefault("recipe", name)
    return raw


def load_config(
    recipe: str | None = None, config_file: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Resolve a config: a recipe, then a YAML file over it, then dotted overrides."""
    raw: dict[str, Any] = recipe_dict(recipe) if recipe else {}
    if config_file:
        _merge(raw, load_yaml(config_file))
    apply_overrides(raw, overrides or [])
    return config_from_dict(raw)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> None:
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
