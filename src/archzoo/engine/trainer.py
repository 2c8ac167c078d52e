"""The one training loop.

The trainer builds data, model and task from a :class:`~archzoo.config.Config`
(through :mod:`archzoo.engine.builders`), runs ``task.training_step`` over the
training batches of whatever :class:`~archzoo.data.splits.Split` the dataset
gives, validates at each epoch's end and every ``train.eval_every`` optimizer
steps, keeps the best weights by the monitored metric, stops early when told,
checkpoints atomically for exact resume, and finally evaluates the best weights
on the test split. It knows nothing about any model family or kind of data: the
task says what a batch means and counts (:meth:`~archzoo.tasks.base.Task.count`).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import inspect
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from archzoo.config import Config, config_from_dict, load_yaml
from archzoo.data.splits import example_batch
from archzoo.engine import checkpoint as ckpt
from archzoo.engine import faults
from archzoo.engine.builders import build_data, build_model, build_task, resolve_device, save_info, seed_everything
from archzoo.engine.context import OptimizerSlot, TrainContext, max_norm_targets
from archzoo.engine.distributed import DistInfo, barrier, broadcast_object, gather_to_main, init_distributed
from archzoo.engine.ema import WeightEMA
from archzoo.engine.evaluation import evaluate_split
from archzoo.engine.loggers import MetricsLog
from archzoo.engine.optim import build_optimizer, build_scheduler, param_groups
from archzoo.engine.pretrained import check_transfer_interface, freeze_norm_stats, head_module, set_trainable
from archzoo.engine.progress import Progress
from archzoo.engine.resume import resume_changes
from archzoo.errors import TrainingDiverged, UserError
from archzoo.registry import MODELS
from archzoo.tasks.base import Task, to_device
from archzoo.utils import machine_facts

EMA_FILE = "ema.safetensors"  # the averaged weights inside a full checkpoint (train.ema_decay)


def _probe_steps(model: nn.Module, task: Task, batch: Any, device: torch.device, precision: str, steps: int) -> float:
    """The fastest of ``steps + 1`` training steps under ``precision`` on copies of the model and the task,
    with throwaway SGD optimizers at learning rate 0 (the model itself is untouched)."""
    m = copy.deepcopy(model).train()
    t = copy.deepcopy(task)
    slots = {
        name: OptimizerSlot(torch.optim.SGD(list(module.parameters()), lr=0.0), module)
        for name, (module, _) in t.optimizers(m).items()
    }
    ctx = TrainContext(slots, device, precision)
    best = math.inf
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        t.training_step(m, batch, ctx)
        best = min(best, time.perf_counter() - t0)
    return best


def probe_bf16_faster(model: nn.Module, task: Task, batch: Any, device: torch.device, steps: int = 3) -> bool:
    """Time training steps in fp32 and under bf16 autocast on a real batch; True if bf16 wins by 10%.

    The probe runs the task's own ``training_step`` (so a GAN's two optimizer steps are measured
    too) on copies of the model and the task, with throwaway SGD optimizers at learning rate 0,
    and restores the global RNG afterwards: the run itself starts as if no probe had run. A model
    that bf16 cannot run on this CPU (see :func:`bf16_refusal`) is not faster.
    """
    if bf16_refusal(model) is not None:
        return False
    rng = torch.get_rng_state()
    try:
        fp32 = _probe_steps(model, task, batch, device, "fp32", steps)
        bf16 = _probe_steps(model, task, batch, device, "bf16", steps)
    except (RuntimeError, TypeError):
        return False
    finally:
        torch.set_rng_state(rng)
    return bf16 < 0.9 * fp32


def bf16_refusal(model: nn.Module) -> str | None:
    """The sentence refusing ``train.precision=bf16`` for ``model`` on this CPU, or None.

    PyTorch runs ``nn.LSTM`` under CPU bf16 autocast through oneDNN, whose bf16 LSTM needs AVX-512:
    on a CPU without it the step raises deep inside the kernel, for some batches and not others
    (padded input always, packed input depending on its lengths), so no short probe can clear it.
    """
    cap = torch.backends.cpu.get_cpu_capability()
    if cap.startswith("AVX512") or not any(isinstance(m, nn.LSTM) for m in model.modules()):
        return None
    return (
        "train.precision=bf16 cannot train this model on this CPU: PyTorch runs an LSTM under bf16 through "
        f"oneDNN, which needs AVX-512, and this CPU offers {cap}; use train.precision=fp32 (or auto)."
    )


def smallest_image_size(model: nn.Module, x: Tensor, largest: int = 512) -> int | None:
    """The smallest square size that ``model`` takes for images with ``x``'s channels, if a larger one than
    ``x``'s works (a bisection over sizes, run only to explain a shape error); None when none up to ``largest`` does."""

    def fits(size: int) -> bool:
        probe = torch.zeros(1, x.shape[1], size, size, dtype=x.dtype, device=x.device)
        try:
            with torch.no_grad():
                model(probe)
        except (RuntimeError, ValueError, IndexError):
            return False
        return True

    low = max(int(x.shape[-2]), int(x.shape[-1]))  # fails
    if low >= largest or not fits(largest):
        return None
    high = largest  # fits
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid
    return high


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_meta": [int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _py_state_to_tensor(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state_to_tensor(st: tuple[Any, ...]) -> dict[str, Any]:
    version, internal, gauss = st
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    pos, has_gauss, cached = state["numpy_meta"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def new_run_dir(cfg: Config) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.log.dir) / cfg.recipe
    path = base / stamp
    i = 1
    while path.exists():
        path = base / f"{stamp}-{i}"
        i += 1
    return path


# ----------------------------------------------------------------------------- the trainer


class Trainer:
    """Runs one experiment described by a config.

    Args:
        cfg: the experiment.
        run_dir: where to write; a fresh ``runs/<recipe>/<timestamp>`` if None.
        resume: True to continue from ``run_dir/checkpoints/LAST``.
        data_dir: data root from the command line (``--data-dir``).
        load_pretrained: load ``model.pretrained`` (skipped on resume, whose checkpoint replaces it).
    """

    def __init__(
        self,
        cfg: Config,
        run_dir: Path | None = None,
        resume: bool = False,
        data_dir: str | None = None,
        load_pretrained: bool = True,
    ) -> None:
        self.cfg = cfg
        self.resume = resume
        self.data_dir = data_dir
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = resolve_device(t.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_everything(t.seed, t.deterministic)

        if run_dir is None:
            run_dir = new_run_dir(cfg) if self.dist.is_main else None
            run_dir = broadcast_object(run_dir, self.dist)  # type: ignore[assignment]
        self.run_dir = Path(run_dir)  # type: ignore[arg-type]
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.progress = Progress(cfg.log.progress, enabled=self.dist.is_main)
        if resume and (self.run_dir / "config.yaml").is_file():
            saved = config_from_dict(load_yaml(self.run_dir / "config.yaml"))
            for change in resume_changes(saved, cfg, self.run_dir):
                self.progress.message(f"resuming with {change}")

        self.data = build_data(cfg, data_dir)
        self.info = dict(self.data.info)
        if cfg.data.on_device and self.device.type != "cpu":
            self.data = self.data.to(self.device)
        self.model = build_model(cfg, self.info, pretrained=load_pretrained and not resume).to(self.device)
        m = cfg.model
        check_transfer_interface(self.model, m.freeze, m.unfreeze_after, m.backbone_lr)
        set_trainable(self.model, m.freeze, m.unfreeze_after, 0)
        self.memory_format = torch.channels_last if cfg.model.channels_last else None
        if self.memory_format is not None:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-arg]
        self.ema = WeightEMA(self.model, t.ema_decay) if t.ema_decay > 0 else None
        self.task = build_task(cfg)
        self.task.setup(self.model, self.info, self.device)
        plateau = cfg.optim.scheduler == "plateau" or any(
            s.get("scheduler") == "plateau" for s in cfg.optim.slots.values()
        )
        if self.task.monitor is None and (t.early_stopping or plateau):
            what = "train.early_stopping" if t.early_stopping else "optim.scheduler=plateau"
            raise UserError(
                f"{what} needs a monitored metric, and task '{cfg.task.name}' keeps its last weights; set train.monitor."
            )
        # data.val_fraction=0 leaves nothing to validate: no validation runs, and the last weights are kept.
        self.validates = len(self.data.val) > 0
        if not self.validates:
            if t.early_stopping or plateau:
                what = "train.early_stopping" if t.early_stopping else "optim.scheduler=plateau"
                raise UserError(f"{what} needs a validation split, and this dataset has none (data.val_fraction=0?).")
            self.task.monitor = None
        self._check_fits()
        if t.log_histograms and not cfg.log.tensorboard:
            raise UserError("train.log_histograms writes TensorBoard histograms; it needs log.tensorboard=true.")

        world = self.dist.world
        self.batch_size = cfg.data.train_batch
        if self.batch_size % world:
            raise UserError(f"data.batch_size={self.batch_size} must be divisible by the {world} processes.")
        self.batches_per_epoch = max(1, self.data.train.num_batches(self.batch_size))
        self.steps_per_epoch = max(1, self.batches_per_epoch // t.grad_accum)
        self.precision = self._pick_precision()
        self.ctx = self._build_context()
        self.net: nn.Module = self._wrap()

        # Loop state (restored on resume).
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best: float | None = None
        self.best_epoch = -1
        self.best_step = -1
        self.bad_evals = 0  # validations in a row without improvement (train.early_stopping)
        self.last_eval_step = -1
        self.last_save_step = -1
        self.elapsed = 0.0
        self.stopped_early = False
        self.stopped_for_time = False
        self.train_sums: dict[str, Tensor] = {}
        self.train_count: int | float | Tensor = 0
        # The first optimizer step whose training logs were not finite (-1: none yet), kept on the device and
        # updated with torch.where at each batch, so the check costs no host sync per step: it is read only
        # where the loop syncs anyway (logging rows, validations, checkpoints, epoch ends).
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        self.skipped_steps = 0  # optimizer steps skipped for a non-finite loss or gradient (train.skip_nonfinite)
        # Called as fn(step, val_metrics) after every validation (archzoo tune reports to Optuna and may
        # raise optuna.TrialPruned here, which ends fit() like any exception: the run's files are closed).
        self.on_validate: list[Callable[[int, dict[str, float]], None]] = []
        self._raise_at = faults.raise_step(self.dist.rank)  # ARCHZOO_FAULT=raise-on-rank (a test hook), else None
        self._log: MetricsLog | None = None
        self._metrics_rows: int | None = None  # metrics.csv rows the checkpoint resumed from had seen

    # --------------------------------------------------------------------- setup helpers

    def _ddp_whole_model(self) -> bool:
        """DDP wraps the model when one optimizer trains all of it; else the context reduces each slot."""
        slots = list(self.ctx.slots.values())
        return len(slots) == 1 and slots[0].module is self.model

    def _wrap(self) -> nn.Module:
        """The model as the loop runs it: under DDP and ``torch.compile`` when asked."""
        net: nn.Module = self.model
        if self.dist.enabled and self._ddp_whole_model():
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            net = DDP(self.model, device_ids=ids)
        if self.cfg.model.compile:
            net = torch.compile(net)  # type: ignore[assignment]
        return net

    def _set_trainable(self) -> None:
        """Freeze and unfreeze for the current epoch (a function of the epoch alone, so resume agrees)."""
        m = self.cfg.model
        if set_trainable(self.model, m.freeze, m.unfreeze_after, self.epoch) and self.dist.enabled:
            self.net = self._wrap()  # DDP syncs only the parameters that required grad when it was built

    def _train_mode(self) -> None:
        m = self.cfg.model
        self.net.train()
        freeze_norm_stats(self.model, m.freeze, m.unfreeze_after, self.epoch)

    def _check_fits(self) -> None:
        """Run one small validation batch through the task so a shape mismatch is one sentence up front."""
        batch = example_batch(self.data.val, 2)
        if batch is None:
            return
        batch = to_device(batch, self.device, self.memory_format)
        was = self.model.training
        self.model.eval()
        state = self.task.extra_state()
        try:
            with torch.no_grad():
                self.task.eval_step(self.model, batch, "val")
            self.task.compute("val")  # discard the probe from the metrics
        except (RuntimeError, ValueError, IndexError) as e:
            x = batch[0] if isinstance(batch, (tuple, list)) else getattr(batch, "x", None)
            shape = tuple(x.shape[1:]) if isinstance(x, Tensor) else type(batch).__name__
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            name, data = self.cfg.model.name, self.cfg.data.name
            smallest = smallest_image_size(self.model, x) if isinstance(x, Tensor) and x.dim() == 4 else None
            if smallest is not None:
                c, h, w = x.shape[1:]
                stem = "stem" in inspect.signature(MODELS.get(name)).parameters
                hint = ", or its small stem (model.args.stem=small)" if stem else ""
                raise UserError(
                    f"Model '{name}' does not fit dataset '{data}': its images are {c}x{h}x{w}, and the model "
                    f"needs at least {smallest}x{smallest} pixels; choose a model for {h} px input{hint}."
                ) from None
            raise UserError(f"Model '{name}' does not fit dataset '{data}' with input {shape} ({first}).") from None
        finally:
            self.model.train(was)
            self.task.load_extra_state(state)

    def _pick_precision(self) -> str:
        p = self.cfg.train.precision
        if p == "fp16" and self.device.type != "cuda":
            raise UserError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on this device.")
        if p == "bf16" and self.device.type == "cpu" and (why := bf16_refusal(self.model)) is not None:
            raise UserError(why)
        if p != "auto":
            return p
        if self.device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if self.device.type == "cpu":
            batch = example_batch(self.data.train, min(self.batch_size, len(self.data.train)))
            batch = to_device(batch, self.device, self.memory_format)
            chosen = "bf16" if probe_bf16_faster(self.model, self.task, batch, self.device) else "fp32"
            self.progress.message(f"precision auto: {chosen} (measured on this CPU)")
            return chosen
        return "fp32"

    def _total_steps(self) -> int:
        """Optimizer steps of the whole run (of the first slot): epochs × steps, or train.max_steps if fewer."""
        total = self.steps_per_epoch * self.cfg.train.epochs
        return min(total, self.cfg.train.max_steps) if self.cfg.train.max_steps else total

    def _build_context(self) -> TrainContext:
        cfg = self.cfg
        slots: dict[str, OptimizerSlot] = {}
        named = self.task.optimizers(self.model)
        unknown = sorted(set(cfg.optim.slots) - set(named))
        if unknown:
            raise UserError(
                f"optim.slots.{unknown[0]} names no optimizer of task '{cfg.task.name}', "
                f"whose optimizers are: {', '.join(named)}."
            )
        self.slot_configs = {}
        for name, (module, defaults) in named.items():
            ocfg = cfg.optim.for_slot(name, defaults)
            self.slot_configs[name] = ocfg
            head = head_module(module, "model.backbone_lr") if cfg.model.backbone_lr is not None else None
            groups, decayed = param_groups(module, ocfg.weight_decay, head, cfg.model.backbone_lr)
            opt = build_optimizer(ocfg, groups)
            # Each slot's schedule is sized by its own optimizer steps (a WGAN-GP generator steps
            # once every n_critic batches).
            per_epoch = self.task.optimizer_steps(name, self.steps_per_epoch)
            total = self.task.optimizer_steps(name, self._total_steps())
            sched, interval = build_scheduler(ocfg, opt, per_epoch, total)
            scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
            slots[name] = OptimizerSlot(opt, module, sched, interval, scaler, decayed)
            if ocfg.weight_max_norm:
                slots[name].max_norm = float(ocfg.weight_max_norm)
                slots[name].max_normed = max_norm_targets(module, decayed)
        ctx = TrainContext(
            slots, self.device, self.precision, cfg.train.grad_accum, cfg.train.grad_clip, cfg.optim.l1, cfg.optim.l2,
            log_grad_norm=cfg.train.log_grad_norm, skip_nonfinite=cfg.train.skip_nonfinite,
        )  # fmt: skip
        self.ctx = ctx
        # Without a DDP wrapper around the whole model, the context averages each slot's gradients.
        ctx.reduce_gradients = self.dist.enabled and not self._ddp_whole_model()
        return ctx

    # --------------------------------------------------------------------- state

    def _state(self, task_states: list[Any] | None = None) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.ctx.global_step,
            "micro_step": self.ctx.micro_step,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "last_eval_step": self.last_eval_step,
            "elapsed": self.elapsed,
            "stopped_early": self.stopped_early,
            "stopped_for_time": self.stopped_for_time,
            "train_sums": {k: v.detach().cpu() for k, v in self.train_sums.items()},
            "train_count": float(self.train_count),
            "optimizers": {k: s.optimizer.state_dict() for k, s in self.ctx.slots.items()},
            "schedulers": {k: s.scheduler.state_dict() for k, s in self.ctx.slots.items() if s.scheduler is not None},
            "scalers": {k: s.scaler.state_dict() for k, s in self.ctx.slots.items() if s.scaler is not None},
            "rng": _rng_state(),
            "task": self.task.extra_state(),
            # Under DDP each rank's task state (its streams' hidden state), so every rank resumes its own.
            "task_ranks": task_states if task_states is not None and len(task_states) > 1 else None,
            "precision": self.precision,
            "ema_updates": self.ema.updates if self.ema is not None else None,
            "grad_norms": self.ctx.grad_norm_state(),  # train.log_grad_norm: summed since the last row
            # The rows of metrics.csv written before this checkpoint: a row logged after it at the same step
            # (an epoch's end, the final one) is dropped on resume, which logs it again.
            "metrics_rows": len(self._log.rows) if self._log is not None else None,
            "skipped_steps": self.skipped_steps,
        }

    def _load_state(self, path: Path) -> None:
        weights, state = ckpt.load_checkpoint(path)
        ckpt.load_into(self.model, weights, path)
        try:
            for k, s in self.ctx.slots.items():
                s.optimizer.load_state_dict(state["optimizers"][k])
                if s.scheduler is not None:
                    s.scheduler.load_state_dict(state["schedulers"][k])
                if s.scaler is not None:
                    s.scaler.load_state_dict(state["scalers"][k])
            self.epoch = int(state["epoch"])
            self.batch_in_epoch = int(state["batch_in_epoch"])
            self.ctx.global_step = int(state["global_step"])
            self.ctx.micro_step = int(state["micro_step"])
            self.best = state["best"]
            self.best_epoch = int(state["best_epoch"])
            self.best_step = int(state.get("best_step", -1))
            self.bad_evals = int(state.get("bad_evals", state.get("bad_epochs", 0)))
            self.last_eval_step = int(state.get("last_eval_step", -1))
            self.last_save_step = self.ctx.global_step
            self.stopped_early = bool(state.get("stopped_early", False))
            self.stopped_for_time = bool(state.get("stopped_for_time", False))
            self.elapsed = float(state["elapsed"])
            self.train_sums = {k: v.to(self.device) for k, v in state["train_sums"].items()}
            count = float(state["train_count"])
            self.train_count = int(count) if count.is_integer() else count
            ranks = state.get("task_ranks")
            if ranks is not None and len(ranks) != self.dist.world:
                raise ValueError(f"it was written by {len(ranks)} processes, and this run has {self.dist.world}")
            self.task.load_extra_state(ranks[self.dist.rank] if ranks is not None else state.get("task", {}))
            _set_rng_state(state["rng"])
            self.ctx.load_grad_norm_state(state.get("grad_norms", {}))
            rows = state.get("metrics_rows")
            self._metrics_rows = int(rows) if rows is not None else None
            self.skipped_steps = int(state.get("skipped_steps", 0))
            if self.ema is not None:
                averaged = ckpt.load_extra_weights(path, EMA_FILE)
                if averaged is None or state.get("ema_updates") is None:
                    # train.ema_decay was switched on for the resumed run: the average starts here.
                    self.ema = WeightEMA(self.model, self.cfg.train.ema_decay)
                    self.progress.message("the checkpoint has no averaged weights; the average starts from them")
                else:
                    self.ema.load_state_dict(averaged, int(state["ema_updates"]))
        except (KeyError, ValueError, RuntimeError) as e:
            raise UserError(f"Checkpoint {path} does not match this run's configuration ({e}).") from None

    def _save(self) -> None:
        """Write a full checkpoint (rank 0); every rank calls it at the same step, to hand over its task state."""
        self.last_save_step = self.ctx.global_step
        self._last_save_time = time.perf_counter()
        task_states = gather_to_main(self.task.extra_state(), self.dist) if self.dist.enabled else None
        if not self.dist.is_main:
            return
        tag = f"epoch{self.epoch:04d}-step{self.ctx.global_step:07d}"
        extra = {EMA_FILE: self.ema.state_dict()} if self.ema is not None else None
        ckpt.save_checkpoint(self.ckpt_dir, tag, self.model, self._state(task_states), extra=extra)

    def _averaged(self) -> contextlib.AbstractContextManager[None]:
        """Inside: the model holds its averaged weights (train.ema_decay), if any."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    # --------------------------------------------------------------------- evaluation

    def evaluate(self, split: str) -> dict[str, float]:
        return evaluate_split(
            self.model,
            self.task,
            self.data.split(split),
            split,
            self.cfg.data.eval_batch,
            self.device,
            autocast=self.ctx.autocast,
            memory_format=self.memory_format,
            rank=self.dist.rank,
            world=self.dist.world,
        )

    # --------------------------------------------------------------------- the loop

    def fit(self) -> dict[str, float]:
        cfg = self.cfg
        main = self.dist.is_main
        log: MetricsLog | None = None
        if self.resume:
            last = ckpt.latest_checkpoint(self.ckpt_dir)
            if last is None:
                raise UserError(f"Run {self.run_dir} has no checkpoint to resume from.")
            self._load_state(last)
            self.progress.message(f"resuming {self.run_dir} at epoch {self.epoch + 1}, batch {self.batch_in_epoch}")
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.yaml")
            save_info(self.info, self.run_dir)
            tb = self.run_dir / "tensorboard" if cfg.log.tensorboard else None
            sinks: list[Any] = []
            if cfg.log.mlflow:
                from archzoo.engine.loggers import MlflowSink

                sinks.append(MlflowSink(self.run_dir, cfg, self.resume))
            if cfg.log.wandb:
                from archzoo.engine.loggers import WandbSink

                sinks.append(WandbSink(self.run_dir, cfg, self.resume))
            log = MetricsLog(
                self.run_dir / "metrics.csv",
                tb,
                purge_step=self.ctx.global_step + 1 if self.resume else None,
                sinks=sinks,
            )
            if self.resume:
                log.load(self.ctx.global_step)
                if self._metrics_rows is not None:
                    del log.rows[self._metrics_rows :]
            self._log = log
        barrier(self.dist)

        status = "FAILED"
        try:
            # A full disk for any other file the loop writes (metrics.csv, plots) ends the run with one sentence too.
            with ckpt.disk_full_guard("the run's files", self.run_dir, self.ckpt_dir, self.run_dir):
                self._loop(log)
                results = self._finish(log)
            status = "FINISHED"
        finally:
            if log is not None:
                log.close(status)
        return results

    def _stopping(self) -> bool:
        return self.stopped_early or self.stopped_for_time

    def _loop(self, log: MetricsLog | None) -> None:
        t = self.cfg.train
        train = self.data.train
        bs = self.batch_size
        max_steps = t.max_steps or None
        self._t_start = time.perf_counter() - self.elapsed
        self._last_save_time = time.perf_counter()
        unit, every = t.checkpoint_schedule()
        self._reached_max = False
        progress_hook = getattr(self.model, "on_train_progress", None)
        skip = t.skip_nonfinite
        saved_buffers: list[Tensor] = []
        while self.epoch < t.epochs and not self._stopping():
            self._set_trainable()
            self._train_mode()
            self.ctx.epoch = self.epoch
            if self.batch_in_epoch == 0:
                self.task.start_epoch(self.epoch)
            self.progress.start_epoch(self.epoch, t.epochs, self.batches_per_epoch - self.batch_in_epoch)
            batches = train.batches(
                bs, shuffle=True, seed=t.seed, epoch=self.epoch, start=self.batch_in_epoch,
                rank=self.dist.rank, world=self.dist.world, augment=True,
            )  # fmt: skip
            for batch in batches:
                if progress_hook is not None:  # the model's own schedule (a function of progress, so resume agrees)
                    progress_hook(self.epoch + self.batch_in_epoch / self.batches_per_epoch)
                batch = to_device(batch, self.device, self.memory_format)
                hist_due = log is not None and t.log_histograms and (self.ctx.global_step + 1) % t.log_histograms == 0
                self.ctx.grad_observer = self._grad_histograms(log) if hist_due else None
                if skip and self.ctx.micro_step % t.grad_accum == 0:
                    # A skipped step leaves the buffers (batch-norm statistics) as they were before its batches.
                    saved_buffers = [b.detach().clone() for b in self.model.buffers()]
                self.ctx.skipped.clear()
                with self.ctx.no_sync(self.net):
                    logs = self.task.training_step(self.net, batch, self.ctx)
                stepped = not self.ctx.accumulating
                self.ctx.micro_step += 1
                self.batch_in_epoch += 1
                n = self.task.count(batch)
                self._add_logs(logs, n, skip)
                # Reading the loss syncs with the device: the bar shows it every 20 batches only.
                show = self.progress.mode == "bar" and self.batch_in_epoch % 20 == 1
                counted = n * self.dist.world if isinstance(n, int) else 1
                self.progress.update(counted, float(logs["loss"]) if show else None)
                if not stepped:
                    continue
                self.ctx.global_step += 1
                step = self.ctx.global_step
                if self._raise_at is not None and step == self._raise_at:
                    raise RuntimeError(f"ARCHZOO_FAULT: rank {self.dist.rank} raises at step {step} (a test hook).")
                if self.ctx.skipped:  # train.skip_nonfinite skipped an optimizer step of this batch
                    self.skipped_steps += 1
                    with torch.no_grad():
                        for b, before in zip(self.model.buffers(), saved_buffers, strict=True):
                            b.copy_(before)
                elif self.ema is not None:
                    self.ema.update(self.model)
                if log is not None and t.log_histograms and step % t.log_histograms == 0:
                    log.histograms(((f"weights/{k}", p) for k, p in self.model.named_parameters()), step)
                if step % t.log_every == 0:
                    self._check_finite()
                    self._log_train(log, time.perf_counter() - self._t_start)
                if t.eval_every and step % t.eval_every == 0 and self.validates:
                    self._check_finite()
                    self._validate(log, at_epoch_end=False)
                    self._train_mode()
                due = unit == "steps" and step % int(every) == 0
                if unit == "seconds":  # rank 0's clock decides, so every rank saves at the same step
                    due = bool(broadcast_object(time.perf_counter() - self._last_save_time >= every, self.dist))
                if due:
                    self._check_finite()
                    self.elapsed = time.perf_counter() - self._t_start
                    self._save()
                if (max_steps and step >= max_steps) or self._stopping():
                    break
            if self._stopping() and self.batch_in_epoch < self.batches_per_epoch:
                break  # stopped by a validation inside the epoch
            reached_max = bool(max_steps and self.ctx.global_step >= max_steps)
            self._check_finite()
            self._reached_max = reached_max
            self._end_epoch(log, time.perf_counter() - self._t_start)
            if reached_max:
                break

    def _check_time(self) -> None:
        """Stop once train.max_time has passed (rank 0's clock decides, so every rank stops together)."""
        t = self.cfg.train
        if not t.max_time or self.stopped_for_time:
            return
        over = bool(broadcast_object(time.perf_counter() - self._t_start >= t.max_time, self.dist))
        if over:
            self.stopped_for_time = True
            self.progress.message(
                f"train.max_time={t.max_time:g}s reached at epoch {self.epoch + 1}, step {self.ctx.global_step}; stopping"
            )

    def _add_logs(self, logs: dict[str, Tensor], n: int | Tensor, skip: bool) -> None:
        """Add one batch's logs to the running sums, and note on the device whether they were finite.

        By default the first optimizer step with a non-finite log goes into ``_first_bad`` (no host sync);
        with train.skip_nonfinite such a batch is left out of the means instead (a device-side mask).
        """
        bad: Tensor | None = None
        values = {k: v.detach().float() for k, v in logs.items()}
        for v in values.values():
            b = ~torch.isfinite(v).all()
            bad = b if bad is None else bad | b
        if bad is None:
            self.train_count = self.train_count + n
            return
        if skip:
            keep = (~bad).float()
            for k, v in values.items():
                self.train_sums[k] = self.train_sums.get(k, 0) + torch.where(bad, 0.0, v * n)
            self.train_count = self.train_count + keep * n
            return
        for k, v in values.items():
            self.train_sums[k] = self.train_sums.get(k, 0) + v * n
        self.train_count = self.train_count + n
        step = self.ctx.global_step + 1  # the optimizer step this batch belongs to (counted after the batch)
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)

    def _first_bad_step(self) -> int:
        """The first optimizer step with a non-finite training log, or -1 (the check's one host read)."""
        return int(self._first_bad)

    def _check_finite(self) -> None:
        """Stop at a non-finite training log (unless train.skip_nonfinite), naming the first bad step.

        Runs before every validation, checkpoint and logged row, so no checkpoint holds weights from
        after a bad step.
        """
        if self.cfg.train.skip_nonfinite:
            return
        first = self._first_bad_step()
        if first < 0:
            return
        bad = [f"train/{k}" for k, v in self.train_sums.items() if not torch.isfinite(v).all()] or ["train/loss"]
        last = ckpt.latest_checkpoint(self.ckpt_dir)
        kept = f"the last good checkpoint, {last}, is kept" if last else "no checkpoint had been written yet"
        raise TrainingDiverged(
            f"Training diverged: {', '.join(bad)} became NaN or infinite first at step {first} "
            f"(epoch {self.epoch + 1}), and {kept}; try a lower optim.lr or train.grad_clip, "
            "or resume with train.skip_nonfinite=true to skip such steps."
        )

    def _train_means(self) -> dict[str, float]:
        if isinstance(self.train_count, Tensor):
            count = float(self.train_count)
        else:
            count = self.train_count
        if not count:
            return {}
        return {f"train/{k}": float(v) / count for k, v in self.train_sums.items()}

    def _lrs(self) -> dict[str, float]:
        """The learning rate of each optimizer: ``train/lr`` for one, ``train/lr_<slot>`` for several."""
        slots = self.ctx.slots
        if len(slots) == 1:
            return {"train/lr": next(iter(slots.values())).optimizer.param_groups[0]["lr"]}
        return {f"train/lr_{k}": s.optimizer.param_groups[0]["lr"] for k, s in slots.items()}

    def _row(self, elapsed: float) -> dict[str, Any]:
        return {
            "epoch": self.epoch + self.batch_in_epoch / self.batches_per_epoch,
            "step": self.ctx.global_step,
            "time": round(elapsed, 3),
        }

    def _grad_histograms(self, log: MetricsLog) -> Any:
        """An observer for the context: histograms ``grads/<name>`` of a slot's gradients at the coming step."""
        names = {id(p): k for k, p in self.model.named_parameters()}

        def observe(slot_name: str, slot: OptimizerSlot) -> None:
            grads = [
                (f"grads/{names.get(id(p), f'{slot_name}.{k}')}", p.grad)
                for k, p in slot.module.named_parameters()
                if p.grad is not None
            ]
            log.histograms(grads, self.ctx.global_step + 1)

        return observe

    def _grad_norms(self) -> dict[str, float]:
        """``train/grad_norm`` (per slot with several optimizers) since the last row, with train.log_grad_norm."""
        return self.ctx.pop_grad_norms() if self.cfg.train.log_grad_norm else {}

    def _skips(self) -> dict[str, float]:
        """``train/skipped_steps`` so far, with train.skip_nonfinite."""
        return {"train/skipped_steps": float(self.skipped_steps)} if self.cfg.train.skip_nonfinite else {}

    def _log_train(self, log: MetricsLog | None, elapsed: float) -> None:
        if log is None:
            return
        log.log({**self._row(elapsed), **self._train_means(), **self._lrs(), **self._grad_norms(), **self._skips()})

    def _validate(self, log: MetricsLog | None, at_epoch_end: bool) -> dict[str, float]:
        """Validate; keep the best weights, count patience, step plateau schedules, check the time budget."""
        t = self.cfg.train
        with self._averaged():
            metrics = self.evaluate("val")
        self.last_eval_step = self.ctx.global_step
        monitor = self.task.monitor
        if monitor is not None and monitor not in metrics:
            raise UserError(f"train.monitor '{monitor}' is not among the metrics: {', '.join(sorted(metrics))}.")
        value = metrics[monitor] if monitor is not None else None
        improved = value is not None and (
            self.best is None
            or (value < self.best - t.min_delta if self.task.mode == "min" else value > self.best + t.min_delta)
        )
        self._note = ""
        if value is None:
            pass  # no monitored metric: the last weights are kept
        elif improved:
            self.best, self.best_epoch, self.best_step, self.bad_evals = value, self.epoch, self.ctx.global_step, 0
            self._note = "  *"
            if self.dist.is_main:
                with self._averaged():
                    meta = {"epoch": str(self.epoch), "step": str(self.ctx.global_step), monitor: str(value)}
                    best = self.ckpt_dir / "best.safetensors"
                    with ckpt.disk_full_guard("the best weights best.safetensors", self.ckpt_dir, self.ckpt_dir):
                        ckpt.save_weights(self.model, best, meta)
        else:
            self.bad_evals += 1
            if t.early_stopping and self.bad_evals >= t.early_stopping:
                self.stopped_early = True
                self._note = f"  early stop (no gain in {monitor} for {self.bad_evals} validations)"
        for s in self.ctx.slots.values():
            if s.scheduler is not None and s.scheduler_interval == "plateau" and value is not None:
                s.scheduler.step(value if self.task.mode == "min" else -value)
        if not at_epoch_end:
            elapsed = time.perf_counter() - self._t_start
            if log is not None:
                log.log({**self._row(elapsed), **metrics, **self._lrs()})
            self.progress.message(
                f"step {self.ctx.global_step}: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()) + self._note
            )
            self._check_time()
        for fn in self.on_validate:
            fn(self.ctx.global_step, metrics)
        return metrics

    def _end_epoch(self, log: MetricsLog | None, elapsed: float) -> None:
        t = self.cfg.train
        unit, every = t.checkpoint_schedule()
        last = self._reached_max
        metrics = self._train_means()
        if t.eval_epoch_end and self.validates and self.last_eval_step != self.ctx.global_step:
            metrics.update(self._validate(log, at_epoch_end=True))
        self.train_sums, self.train_count = {}, 0
        for s in self.ctx.slots.values():
            if s.scheduler is not None and s.scheduler_interval == "epoch":
                s.scheduler.step()
        self.progress.end_epoch(self.epoch, t.epochs, metrics, getattr(self, "_note", ""))
        self._note = ""
        if log is not None:
            log.log({"epoch": self.epoch + 1, "step": self.ctx.global_step, "time": round(elapsed, 3), **metrics,
                     **self._lrs(), **self._grad_norms(), **self._skips()})  # fmt: skip
        if self.dist.is_main:
            with self._averaged():
                shown = self.task.on_epoch_end(self.model, self.epoch, self.run_dir)
            if shown:
                from archzoo.viz.grid import draw

                for picture in shown:
                    draw(picture)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.elapsed = elapsed
        if self.epoch < t.epochs and not last:
            self._check_time()
        final = last or self.epoch >= t.epochs or self._stopping()
        due = unit == "steps" or (unit == "epochs" and self.epoch % int(every) == 0)
        if unit == "seconds":
            due = bool(broadcast_object(time.perf_counter() - self._last_save_time >= every, self.dist))
        if due or final:
            self._save()
        barrier(self.dist)

    def _finish(self, log: MetricsLog | None) -> dict[str, float]:
        main = self.dist.is_main
        if self.last_save_step != self.ctx.global_step:
            self._check_finite()
            self.elapsed = time.perf_counter() - self._t_start
            self._save()  # stopped inside an epoch: the end of training always has a checkpoint
        best_file = self.ckpt_dir / "best.safetensors"
        barrier(self.dist)
        if self.task.monitor is not None and best_file.is_file():
            ckpt.load_into(self.model, ckpt.load_weights_file(best_file), best_file)  # averaged if ema is on
        elif self.ema is not None:
            self.ema.copy_to(self.model)
        results: dict[str, float] = {}
        if self.validates:
            results.update(self.evaluate("val"))
        if self.data.test is not None:
            results.update(self.evaluate("test"))
        # The epoch whose weights are kept: the best one, or the last when nothing is monitored.
        results["best_epoch"] = self.best_epoch + 1 if self.task.monitor is not None else self.epoch
        if main:
            ckpt.remove_stale_temps(self.run_dir)  # of a process killed while writing these files
            with ckpt.disk_full_guard("the final weights model.safetensors", self.run_dir, self.ckpt_dir):
                ckpt.save_weights(self.model, self.run_dir / "model.safetensors")
            if log is not None:
                log.log(
                    {
                        "epoch": self.epoch,
                        "step": self.ctx.global_step,
                        "time": round(self.elapsed, 3),
                        **{k: v for k, v in results.items() if "/" in k},
                    }
                )
            summary = {
                "recipe": self.cfg.recipe,
                "run_dir": str(self.run_dir),
                "epochs_run": self.epoch,
                "steps_run": self.ctx.global_step,
                "stopped_early": self.stopped_early,
                "stopped_for_time": self.stopped_for_time,
                "best_epoch": results["best_epoch"],
                "best_step": self.best_step if self.task.monitor is not None else self.ctx.global_step,
                "monitor": self.task.monitor,
                "train_seconds": round(self.elapsed, 2),
                "precision": self.precision,
                "world_size": self.dist.world,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "optimizers": {
                    k: {"name": c.name, "lr": c.lr, "betas": c.betas, "scheduler": c.scheduler}
                    for k, c in self.slot_configs.items()
                },
                # The weights kept are an average from this step on (later than 0 if switched on at resume).
                "ema": None
                if self.ema is None
                else {"decay": self.ema.decay, "from_step": self.ctx.global_step - self.ema.updates},
                "metrics": {k: v for k, v in results.items() if "/" in k},
            }
            summary["machine"] = machine_facts(self.device)
            if self.cfg.train.skip_nonfinite:
                summary["skipped_steps"] = self.skipped_steps
            with ckpt.disk_full_guard("results.json", self.run_dir, self.ckpt_dir):
                ckpt.atomic_write_bytes(self.run_dir / "results.json", json.dumps(summary, indent=2).encode())
            confusion = getattr(self.task, "last_confusion", {})
            split = "test" if "test" in confusion else "val"
            if split in confusion:
                payload = {"split": split, "classes": self.info.get("classes"), "matrix": confusion[split].tolist()}
                (self.run_dir / "confusion.json").write_text(json.dumps(payload))
            if self.cfg.log.plots:
                from archzoo.viz.curves import plot_curves

                plot_curves(self.run_dir / "metrics.csv", self.run_dir / "plots")
            if self.cfg.log.report:
                from archzoo.engine.run import Run
                from archzoo.report import write_report

                self.model.eval()
                run = Run(self.run_dir, self.cfg, self.info, self.model, self.task, self.device, self.data_dir,
                          self.data)  # fmt: skip
                path = write_report(run, draw=self.cfg.log.plots)
                self.progress.message(f"report written to {path}")
        return results
