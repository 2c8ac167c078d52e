"""The one training loop.

The trainer builds data, model and task from a :class:`~archzoo.config.Config`,
runs ``task.training_step`` over the training batches, evaluates after every
epoch, keeps the best weights by the monitored metric, stops early when told,
checkpoints atomically for exact resume, and finally evaluates the best weights
on the test split. It knows nothing about any model family.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from archzoo.config import Config, config_from_dict, load_yaml, resume_changes
from archzoo.data.splits import DataBundle, TensorSplit
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.context import OptimizerSlot, TrainContext
from archzoo.engine.distributed import DistInfo, barrier, broadcast_object, init_distributed
from archzoo.engine.ema import WeightEMA
from archzoo.engine.loggers import MetricsLog
from archzoo.engine.optim import build_optimizer, build_scheduler, param_groups
from archzoo.engine.pretrained import check_transfer_interface, freeze_norm_stats, head_module, set_trainable
from archzoo.engine.progress import Progress
from archzoo.errors import TrainingDiverged, UserError
from archzoo.registry import DATASETS, MODELS, TASKS, _check_kwargs
from archzoo.tasks.base import Task, batch_size_of, to_device

EMA_FILE = "ema.safetensors"  # the averaged weights inside a full checkpoint (train.ema_decay)

INFO_KEYS = ("num_classes", "in_channels", "image_size", "in_features", "out_features", "seq_len", "vocab_size")


# ----------------------------------------------------------------------------- building blocks


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name} was asked for, but CUDA is not available on this machine.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("train.device=mps was asked for, but MPS is not available on this machine.")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        # Let cuDNN time its convolution algorithms once per shape and keep the fastest.
        torch.backends.cudnn.benchmark = True


def _accepted(fn: Any) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def build_data(cfg: Config, data_dir: str | None = None) -> DataBundle:
    """Build the configured dataset; generic options go to the builder only if it accepts them."""
    fn = DATASETS.get(cfg.data.name)
    accepted = _accepted(fn)
    generic = {
        "data_dir": cfg.data.dir or data_dir,
        "val_fraction": cfg.data.val_fraction,
        "seed": cfg.train.seed,
        "augment": dict(cfg.data.augment) or None,
    }
    kwargs = {k: v for k, v in generic.items() if k in accepted}
    if cfg.data.augment and "augment" not in accepted:
        raise UserError(f"Dataset '{cfg.data.name}' does not support data.augment.")
    _check_kwargs(fn, cfg.data.args, f"dataset '{cfg.data.name}'")
    kwargs.update(cfg.data.args)
    bundle = fn(**kwargs)
    if not isinstance(bundle, DataBundle):
        raise TypeError(f"dataset builder '{cfg.data.name}' must return a DataBundle")
    return bundle


def build_model(cfg: Config, info: dict[str, Any], pretrained: bool = True) -> nn.Module:
    """Build the configured model; ``num_classes``, ``in_channels``... come from the data unless set.

    ``model.pretrained`` weights are loaded unless ``pretrained`` is False (a resumed run or a
    finished run's weights replace them anyway).
    """
    fn = MODELS.get(cfg.model.name)
    accepted = _accepted(fn)
    kwargs = {k: info[k] for k in INFO_KEYS if k in info and k in accepted}
    kwargs.update(cfg.model.args)
    _check_kwargs(fn, kwargs, f"model '{cfg.model.name}'")
    model = fn(**kwargs)
    from archzoo.layers.init import init_weights

    init_weights(model, cfg.model.init)
    if cfg.model.pretrained and pretrained:
        from archzoo.engine.pretrained import load_pretrained

        load_pretrained(model, cfg.model.pretrained)
    return model


def build_task(cfg: Config) -> Task:
    task = TASKS.create(cfg.task.name, **cfg.task.args)
    if cfg.train.monitor:
        task.monitor = cfg.train.monitor
    if cfg.train.mode:
        task.mode = cfg.train.mode
    return task


def probe_bf16_faster(model: nn.Module, task: Task, batch: Any, device: torch.device, steps: int = 3) -> bool:
    """Time forward+backward in fp32 and under bf16 autocast on a real batch; True if bf16 wins by 10%."""
    import copy

    m = copy.deepcopy(model).train()
    rng = torch.get_rng_state()

    def run(dtype: torch.dtype | None) -> float:
        best = math.inf
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            ctx = torch.autocast(device.type, dtype=dtype) if dtype else _null()
            with ctx:
                loss, _ = task.loss(m, batch)
            loss.backward()
            m.zero_grad(set_to_none=True)
            best = min(best, time.perf_counter() - t0)
        return best

    try:
        fp32, bf16 = run(None), run(torch.bfloat16)
    except (RuntimeError, TypeError):
        return False
    finally:
        torch.set_rng_state(rng)
    return bf16 < 0.9 * fp32


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


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
        load_pretrained: load ``model.pretrained`` (skipped on resume, whose checkpoint replaces it;
            False when a finished run's weights are loaded next).
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
            self.data = DataBundle(
                self.data.train.to(self.device),
                self.data.val.to(self.device),
                self.data.test.to(self.device) if self.data.test is not None else None,
                self.data.info,
            )
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
        if self.task.monitor is None and (t.early_stopping or cfg.optim.scheduler == "plateau"):
            what = "train.early_stopping" if t.early_stopping else "optim.scheduler=plateau"
            raise UserError(
                f"{what} needs a monitored metric, and task '{cfg.task.name}' keeps its last weights; set train.monitor."
            )
        self._check_fits()

        world = self.dist.world
        if cfg.data.batch_size % world:
            raise UserError(f"data.batch_size={cfg.data.batch_size} must be divisible by the {world} processes.")
        self.steps_per_epoch = max(1, self.data.train.num_batches(cfg.data.batch_size) // t.grad_accum)
        self.precision = self._pick_precision()
        self.ctx = self._build_context()
        self.net: nn.Module = self._wrap()

        # Loop state (restored on resume).
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best: float | None = None
        self.best_epoch = -1
        self.bad_epochs = 0
        self.elapsed = 0.0
        self.stopped_early = False
        self.stopped_for_time = False
        self.train_sums: dict[str, Tensor] = {}
        self.train_count = 0

    # --------------------------------------------------------------------- setup helpers

    def _wrap(self) -> nn.Module:
        """The model as the loop runs it: under DDP and ``torch.compile`` when asked."""
        net: nn.Module = self.model
        if self.dist.enabled:
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

    def _check_fits(self) -> None:
        """Run one small validation batch through the task so a shape mismatch is one sentence up front."""
        batch = next(self.data.val.batches(2), None)
        if batch is None:
            return
        batch = to_device(batch, self.device, self.memory_format)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.task.eval_step(self.model, batch, "val")
            self.task.compute("val")  # discard the probe from the metrics
        except (RuntimeError, ValueError, IndexError) as e:
            shape = tuple(batch[0].shape[1:]) if isinstance(batch, (tuple, list)) else "?"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(
                f"Model '{self.cfg.model.name}' does not fit dataset '{self.cfg.data.name}' with input {shape} ({first})."
            ) from None
        finally:
            self.model.train(was)

    def _pick_precision(self) -> str:
        p = self.cfg.train.precision
        if p == "fp16" and self.device.type != "cuda":
            raise UserError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on this device.")
        if p != "auto":
            return p
        if self.device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if self.device.type == "cpu":
            batch = next(self.data.train.batches(min(self.cfg.data.batch_size, len(self.data.train))))
            batch = to_device(batch, self.device, self.memory_format)
            chosen = "bf16" if probe_bf16_faster(self.model, self.task, batch, self.device) else "fp32"
            self.progress.message(f"precision auto: {chosen} (measured on this CPU)")
            return chosen
        return "fp32"

    def _build_context(self) -> TrainContext:
        cfg = self.cfg
        slots: dict[str, OptimizerSlot] = {}
        for name, (module, overrides) in self.task.optimizers(self.model).items():
            head = head_module(module, "model.backbone_lr") if cfg.model.backbone_lr is not None else None
            groups, decayed = param_groups(module, cfg.optim.weight_decay, head, cfg.model.backbone_lr)
            opt = build_optimizer(cfg.optim, groups, overrides)
            sched, interval = build_scheduler(cfg.optim, opt, self.steps_per_epoch, cfg.train.epochs)
            scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
            slots[name] = OptimizerSlot(opt, module, sched, interval, scaler, decayed)
        return TrainContext(
            slots, self.device, self.precision, cfg.train.grad_accum, cfg.train.grad_clip, cfg.optim.l1, cfg.optim.l2
        )

    # --------------------------------------------------------------------- state

    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.ctx.global_step,
            "micro_step": self.ctx.micro_step,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "elapsed": self.elapsed,
            "train_sums": {k: v.detach().cpu() for k, v in self.train_sums.items()},
            "train_count": self.train_count,
            "optimizers": {k: s.optimizer.state_dict() for k, s in self.ctx.slots.items()},
            "schedulers": {k: s.scheduler.state_dict() for k, s in self.ctx.slots.items() if s.scheduler is not None},
            "scalers": {k: s.scaler.state_dict() for k, s in self.ctx.slots.items() if s.scaler is not None},
            "rng": _rng_state(),
            "task": self.task.extra_state(),
            "precision": self.precision,
            "ema_updates": self.ema.updates if self.ema is not None else None,
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
            self.bad_epochs = int(state["bad_epochs"])
            self.elapsed = float(state["elapsed"])
            self.train_sums = {k: v.to(self.device) for k, v in state["train_sums"].items()}
            self.train_count = int(state["train_count"])
            self.task.load_extra_state(state.get("task", {}))
            _set_rng_state(state["rng"])
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
        if not self.dist.is_main:
            return
        tag = f"epoch{self.epoch:04d}-step{self.ctx.global_step:07d}"
        extra = {EMA_FILE: self.ema.state_dict()} if self.ema is not None else None
        ckpt.save_checkpoint(self.ckpt_dir, tag, self.model, self._state(), extra=extra)

    def _averaged(self) -> contextlib.AbstractContextManager[None]:
        """Inside: the model holds its averaged weights (train.ema_decay), if any."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    # --------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, float]:
        data: TensorSplit = self.data.split(split)
        self.model.eval()
        for batch in data.batches(self.cfg.data.eval_batch_size, rank=self.dist.rank, world=self.dist.world):
            batch = to_device(batch, self.device, self.memory_format)
            with self.ctx.autocast():
                self.task.eval_step(self.model, batch, split)
        return self.task.compute(split)

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
            tb = self.run_dir / "tensorboard" if cfg.log.tensorboard else None
            log = MetricsLog(
                self.run_dir / "metrics.csv", tb, purge_step=self.ctx.global_step + 1 if self.resume else None
            )
            if self.resume:
                log.load(self.ctx.global_step)
        barrier(self.dist)

        try:
            self._loop(log)
            results = self._finish(log)
        finally:
            if log is not None:
                log.close()
        return results

    def _loop(self, log: MetricsLog | None) -> None:
        cfg, t = self.cfg, self.cfg.train
        train = self.data.train
        bs = cfg.data.batch_size
        nb = train.num_batches(bs)
        max_steps = t.max_steps or None
        t_start = time.perf_counter() - self.elapsed
        m = cfg.model
        while self.epoch < t.epochs and not (self.stopped_early or self.stopped_for_time):
            self._set_trainable()
            self.net.train()
            freeze_norm_stats(self.model, m.freeze, m.unfreeze_after, self.epoch)
            self.ctx.epoch = self.epoch
            self.progress.start_epoch(self.epoch, t.epochs, nb - self.batch_in_epoch)
            batches = train.batches(
                bs, shuffle=True, seed=t.seed, epoch=self.epoch, start=self.batch_in_epoch,
                rank=self.dist.rank, world=self.dist.world, augment=True,
            )  # fmt: skip
            for batch in batches:
                batch = to_device(batch, self.device, self.memory_format)
                with self.ctx.no_sync(self.net):
                    logs = self.task.training_step(self.net, batch, self.ctx)
                stepped = not self.ctx.accumulating
                self.ctx.micro_step += 1
                self.batch_in_epoch += 1
                n = batch_size_of(batch)
                for k, v in logs.items():
                    v = v.detach().float()
                    self.train_sums[k] = self.train_sums.get(k, 0) + v * n
                self.train_count += n
                # Reading the loss syncs with the device: the bar shows it every 20 batches only.
                show = self.progress.mode == "bar" and self.batch_in_epoch % 20 == 1
                self.progress.update(n * self.dist.world, float(logs["loss"]) if show else None)
                if not stepped:
                    continue
                self.ctx.global_step += 1
                step = self.ctx.global_step
                if self.ema is not None:
                    self.ema.update(self.model)
                if step % t.log_every == 0:
                    self._log_train(log, time.perf_counter() - t_start)
                if t.checkpoint_every and step % t.checkpoint_every == 0:
                    self._check_finite()
                    self.elapsed = time.perf_counter() - t_start
                    self._save()
                if max_steps and step >= max_steps:
                    break
            reached_max = bool(max_steps and self.ctx.global_step >= max_steps)
            self._check_finite()
            self._end_epoch(log, time.perf_counter() - t_start)
            if reached_max:
                break
            if t.max_time and self.epoch < t.epochs:
                # Rank 0's clock decides, so every rank stops after the same epoch.
                over = bool(broadcast_object(self.elapsed >= t.max_time, self.dist))
                if over:
                    self.stopped_for_time = True
                    self.progress.message(
                        f"train.max_time={t.max_time:g}s reached after epoch {self.epoch} of {t.epochs}; stopping"
                    )

    def _check_finite(self) -> None:
        bad = [k for k, v in self.train_sums.items() if not torch.isfinite(v).all()]
        if bad:
            last = ckpt.latest_checkpoint(self.ckpt_dir)
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"Training diverged at epoch {self.epoch + 1}, step {self.ctx.global_step} "
                f"({bad[0]} is not finite); {kept}; try a lower optim.lr or set train.grad_clip."
            )

    def _train_means(self) -> dict[str, float]:
        if not self.train_count:
            return {}
        return {f"train/{k}": float(v) / self.train_count for k, v in self.train_sums.items()}

    def _log_train(self, log: MetricsLog | None, elapsed: float) -> None:
        if log is None:
            return
        row: dict[str, Any] = {
            "epoch": self.epoch + self.batch_in_epoch / max(1, self.data.train.num_batches(self.cfg.data.batch_size)),
            "step": self.ctx.global_step,
            "time": round(elapsed, 3),
        }
        row.update(self._train_means())
        slot = next(iter(self.ctx.slots.values()))
        row["train/lr"] = slot.optimizer.param_groups[0]["lr"]
        log.log(row)

    def _end_epoch(self, log: MetricsLog | None, elapsed: float) -> None:
        t = self.cfg.train
        metrics = self._train_means()
        with self._averaged():
            metrics.update(self.evaluate("val"))
        self.train_sums, self.train_count = {}, 0
        monitor = self.task.monitor
        if monitor is not None and monitor not in metrics:
            raise UserError(f"train.monitor '{monitor}' is not among the metrics: {', '.join(sorted(metrics))}.")
        value = metrics[monitor] if monitor is not None else None
        improved = value is not None and (
            self.best is None
            or (value < self.best - t.min_delta if self.task.mode == "min" else value > self.best + t.min_delta)
        )
        note = ""
        if value is None:
            pass  # no monitored metric: the last weights are kept
        elif improved:
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
            note = "  *"
            if self.dist.is_main:
                with self._averaged():
                    ckpt.save_weights(
                        self.model, self.ckpt_dir / "best.safetensors", {"epoch": str(self.epoch), monitor: str(value)}
                    )
        else:
            self.bad_epochs += 1
            if t.early_stopping and self.bad_epochs >= t.early_stopping:
                self.stopped_early = True
                note = f"  early stop (no gain in {monitor} for {self.bad_epochs} epochs)"
        for s in self.ctx.slots.values():
            if s.scheduler is not None and s.scheduler_interval == "epoch":
                s.scheduler.step()
            elif s.scheduler is not None and s.scheduler_interval == "plateau" and value is not None:
                s.scheduler.step(value if self.task.mode == "min" else -value)
        self.progress.end_epoch(self.epoch, t.epochs, metrics, note)
        if log is not None:
            slot = next(iter(self.ctx.slots.values()))
            log.log(
                {
                    "epoch": self.epoch + 1,
                    "step": self.ctx.global_step,
                    "time": round(elapsed, 3),
                    **metrics,
                    "train/lr": slot.optimizer.param_groups[0]["lr"],
                }
            )
        if self.dist.is_main:
            with self._averaged():
                self.task.on_epoch_end(self.model, self.epoch, self.run_dir)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.elapsed = elapsed
        self._save()
        barrier(self.dist)

    def _finish(self, log: MetricsLog | None) -> dict[str, float]:
        main = self.dist.is_main
        best_file = self.ckpt_dir / "best.safetensors"
        barrier(self.dist)
        if self.task.monitor is not None and best_file.is_file():
            ckpt.load_into(self.model, ckpt.load_weights_file(best_file), best_file)  # averaged if ema is on
        elif self.ema is not None:
            self.ema.copy_to(self.model)
        results: dict[str, float] = {}
        results.update(self.evaluate("val"))
        if self.data.test is not None:
            results.update(self.evaluate("test"))
        # The epoch whose weights are kept: the best one, or the last when nothing is monitored.
        results["best_epoch"] = self.best_epoch + 1 if self.task.monitor is not None else self.epoch
        if main:
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
                "stopped_early": self.stopped_early,
                "stopped_for_time": self.stopped_for_time,
                "best_epoch": results["best_epoch"],
                "monitor": self.task.monitor,
                "train_seconds": round(self.elapsed, 2),
                "precision": self.precision,
                "world_size": self.dist.world,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                # The weights kept are an average from this step on (later than 0 if switched on at resume).
                "ema": None
                if self.ema is None
                else {"decay": self.ema.decay, "from_step": self.ctx.global_step - self.ema.updates},
                "metrics": {k: v for k, v in results.items() if "/" in k},
            }
            (self.run_dir / "results.json").write_text(json.dumps(summary, indent=2))
            if self.cfg.log.plots:
                from archzoo.viz.curves import plot_curves

                plot_curves(self.run_dir / "metrics.csv", self.run_dir / "plots")
        return results


def load_run(run: str | Path, data_dir: str | None = None, weights: str = "final") -> Trainer:
    """A finished (or interrupted) run directory, its model holding the ``final``, ``best`` or ``last`` weights.

    ``last`` is the last full checkpoint: its weight average when the run keeps one (``train.ema_decay``),
    as the run would have saved it; ``raw`` is that checkpoint's own, unaveraged weights.
    """
    from archzoo.config import load_config

    rd = Path(run)
    if not (rd / "config.yaml").is_file():
        raise UserError(f"{rd} is not a run directory (it has no config.yaml).")
    cfg = load_config(None, rd / "config.yaml")
    cfg.log.progress = "none"
    trainer = Trainer(cfg, run_dir=rd, data_dir=data_dir, load_pretrained=False)  # the run's own weights come next
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
        trainer.epoch, trainer.batch_in_epoch = int(loop.get("epoch", 0)), int(loop.get("batch_in_epoch", 0))
    else:
        src = rd / ("model.safetensors" if weights == "final" else "checkpoints/best.safetensors")
        if not src.is_file():
            raise UserError(f"Run {rd} has no {src.name}; it may not have finished (try --weights last).")
        state = ckpt.load_weights_file(src)
    ckpt.load_into(trainer.model, state, src)
    trainer.model.eval()
    return trainer
