"""The MLP and the small CNN of archzoo's recipes as Keras 3 models on the torch backend.

Keras 3 (Chollet et al., https://keras.io/keras_3/) runs one model definition on several
backends; here it runs on PyTorch, so Keras's ``compile``/``fit`` and archzoo's engine train the
same architecture, on the same arrays, in the same process. A recipe's archzoo model is built by
archzoo's own builder (:func:`archzoo.engine.builders.build_model`), walked layer by layer and
rewritten with Keras's ``Dense``, ``Conv2D``, ``BatchNormalization``, ``Dropout``, ``MaxPooling2D``
and ``GlobalAveragePooling2D``, either as a ``keras.Sequential`` or with the Functional API
(``keras.Input`` → layer calls → ``keras.Model``). The archzoo model's initial weights are copied
across, so both start from the same point and compute the same function:

.. math::
    \\text{Dense}(x) = x W^\\top + b, \\qquad
    \\text{BN}(x) = \\gamma \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}} + \\beta

with the PyTorch ``Linear`` weight :math:`W` of shape ``(out, in)`` stored transposed as the Keras
kernel ``(in, out)``, a ``Conv2d`` weight ``(out, in, kh, kw)`` stored as ``(kh, kw, in, out)``, and
batch norm's ``eps`` and momentum carried over (Keras's momentum is ``1 - torch_momentum``).

Parameter counts compare like with like: archzoo's ``parameters()`` equal Keras's *trainable*
weights; Keras also counts batch norm's moving mean and variance as non-trainable weights, which
PyTorch keeps as buffers (``running_mean``, ``running_var``).

Training uses Keras's own loop: the recipe's optimizer (adam, adamw or sgd), learning rate and
loss, the callbacks ``EarlyStopping`` (best weights restored), ``ReduceLROnPlateau`` (Keras's
schedule: ``optim.scheduler`` becomes ``plateau`` unless set on the command line) and
``ModelCheckpoint`` (``RUN/checkpoints/best.keras``), and writes Keras's History as
``RUN/history.csv`` and ``RUN/curves.png``. See :func:`train_keras`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from archzoo.config import Config, load_config, parse_override
from archzoo.errors import UserError
from archzoo.viz.figure import save_figure

APIS = ("sequential", "functional")
MODELS = ("mlp", "mlp_large", "convnet", "convnet_small")
OPTIMIZERS = ("adam", "adamw", "sgd")
DEFAULT_PATIENCE = 10  # EarlyStopping patience when the recipe sets no train.early_stopping
# archzoo's names of validation metrics -> the names of the Keras metrics compiled here.
_MONITORS = {"val/loss": "val_loss", "val/acc": "val_acc", "val/rmse": "val_rmse", "val/mae": "val_mae"}
_ACTS = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}


def get_keras() -> Any:
    """Import Keras on the torch backend: ``KERAS_BACKEND`` is set to torch when unset, any other
    choice is refused in one sentence, and a missing install says how to get it."""
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen is None:
        os.environ["KERAS_BACKEND"] = "torch"
    elif chosen.strip().lower() != "torch":
        raise UserError(
            f"KERAS_BACKEND={chosen} is set, but archzoo runs Keras on the torch backend only; "
            "unset it or set KERAS_BACKEND=torch."
        )
    try:
        import keras
    except ImportError:
        raise UserError("Keras is not installed; install it with pip install 'archzoo[keras]'.") from None
    if keras.backend.backend() != "torch":
        raise UserError(
            f"Keras was already imported with the {keras.backend.backend()} backend; "
            "archzoo needs KERAS_BACKEND=torch set before Keras is first imported."
        )
    return keras


# ----------------------------------------------------------------------------- models


def _leaves(model: nn.Module) -> list[nn.Module]:
    """The layers of an archzoo MLP or ConvNet in forward order (both register them in that order)."""
    from archzoo.models.cnn import ConvNet
    from archzoo.models.mlp import MLP

    if not isinstance(model, (MLP, ConvNet)):
        raise UserError(
            f"archzoo has no Keras translation of {type(model).__name__}; it translates the models {', '.join(MODELS)}."
        )
    return [m for m in model.modules() if not list(m.children())]


def _keras_layer(keras: Any, m: nn.Module, data_format: str, first: bool, after_pool: bool) -> Any | None:
    """The Keras layer that computes what the PyTorch leaf ``m`` computes (None: nothing to do)."""
    L = keras.layers
    axis = 1 if data_format == "channels_first" else -1
    if isinstance(m, nn.Identity):
        return None
    if isinstance(m, nn.Flatten):
        if not (first or after_pool):
            raise UserError("A Flatten between convolutions has no layout-free Keras translation.")
        return L.Flatten() if first else None  # after global pooling the features are already (B, C)
    if isinstance(m, nn.Linear):
        return L.Dense(m.out_features, use_bias=m.bias is not None)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if m.momentum is None or not m.affine or not m.track_running_stats:
            raise UserError("Only affine batch norm with running statistics and a fixed momentum translates to Keras.")
        return L.BatchNormalization(
            axis=-1 if isinstance(m, nn.BatchNorm1d) else axis, momentum=1.0 - m.momentum, epsilon=m.eps
        )
    if type(m) in _ACTS:
        return L.Activation(_ACTS[type(m)])
    if isinstance(m, nn.GELU):
        if m.approximate != "none":
            raise UserError("The tanh-approximated GELU has no Keras activation name; use act=gelu.")
        return L.Activation("gelu")  # Keras's gelu is the exact erf form by default, as torch's
    if isinstance(m, nn.Dropout):
        return L.Dropout(m.p)
    if isinstance(m, nn.Conv2d):
        k, s = m.kernel_size, m.stride
        same = m.padding == ((k[0] - 1) // 2, (k[1] - 1) // 2) and s == (1, 1) and k[0] % 2 == 1
        if m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros" or not (same or m.padding == (0, 0)):
            raise UserError("Only ungrouped, undilated convolutions with 'same' or no padding translate to Keras.")
        return L.Conv2D(
            m.out_channels,
            k,
            strides=s,
            padding="same" if same and m.padding != (0, 0) else "valid",
            use_bias=m.bias is not None,
            data_format=data_format,
        )
    if isinstance(m, nn.MaxPool2d):
        if m.padding != 0 or m.dilation != 1 or m.ceil_mode:
            raise UserError("Only unpadded max pooling translates to Keras.")
        return L.MaxPooling2D(m.kernel_size, strides=m.stride, data_format=data_format)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        if m.output_size not in (1, (1, 1)):
            raise UserError("Only global average pooling (output size 1) translates to Keras.")
        return L.GlobalAveragePooling2D(data_format=data_format)
    raise UserError(f"The layer {type(m).__name__} has no Keras translation here.")


def _copy_weights(m: nn.Module, layer: Any) -> None:
    """Set the Keras ``layer``'s weights to those of the PyTorch module ``m`` (layouts converted)."""

    def np_(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy()

    if isinstance(m, nn.Linear):
        w = [np_(m.weight).T]  # (out, in) -> (in, out)
    elif isinstance(m, nn.Conv2d):
        w = [np_(m.weight.permute(2, 3, 1, 0))]  # (out, in, kh, kw) -> (kh, kw, in, out)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        layer.set_weights([np_(m.weight), np_(m.bias), np_(m.running_mean), np_(m.running_var)])
        return
    else:
        return
    if m.bias is not None:
        w.append(np_(m.bias))
    layer.set_weights(w)


def to_keras(
    model: nn.Module,
    input_shape: tuple[int, ...],
    api: str = "sequential",
    data_format: str = "channels_first",
    copy_weights: bool = True,
    name: str | None = None,
) -> Any:
    """Rewrite an archzoo MLP or ConvNet as a Keras model with the same layers and parameters.

    Args:
        model: an archzoo :class:`~archzoo.models.mlp.MLP` or :class:`~archzoo.models.cnn.ConvNet`.
        input_shape: one sample's shape as Keras sees it: ``(C, H, W)`` for ``channels_first``,
            ``(H, W, C)`` for ``channels_last``, ``(F,)`` for tabular data.
        api: ``"sequential"`` (``keras.Sequential``) or ``"functional"`` (``keras.Model(inputs,
            outputs)``) (default ``"sequential"``).
        data_format: the convolutions' layout, ``"channels_first"`` or ``"channels_last"``
            (default ``"channels_first"``).
        copy_weights: start from ``model``'s weights and batch-norm statistics (default True).
        name: the Keras model's name (default: the archzoo class name in lower case).

    Shapes:
        input :math:`(B, *\\text{input\\_shape})`, output :math:`(B, \\text{out})` (logits).
    """
    if api not in APIS:
        raise UserError(f"--api must be sequential or functional, got '{api}'.")
    if data_format not in ("channels_first", "channels_last"):
        raise UserError(f"data_format must be channels_first or channels_last, got '{data_format}'.")
    keras = get_keras()
    pairs: list[tuple[nn.Module, Any]] = []
    after_pool = False
    for i, m in enumerate(_leaves(model)):
        layer = _keras_layer(keras, m, data_format, first=i == 0, after_pool=after_pool)
        after_pool = after_pool or isinstance(m, nn.AdaptiveAvgPool2d)
        if layer is not None:
            pairs.append((m, layer))
    layers = [layer for _, layer in pairs]
    name = name or type(model).__name__.lower()
    if api == "sequential":
        kmodel = keras.Sequential([keras.Input(shape=tuple(input_shape)), *layers], name=name)
    else:
        inputs = keras.Input(shape=tuple(input_shape))
        x = inputs
        for layer in layers:
            x = layer(x)
        kmodel = keras.Model(inputs, x, name=name)
    if copy_weights:
        for m, layer in pairs:
            _copy_weights(m, layer)
    return kmodel


def param_counts(model: nn.Module, kmodel: Any) -> dict[str, int]:
    """archzoo's parameters and buffers of running statistics beside Keras's trainable and
    non-trainable weights: ``archzoo == keras_trainable`` and ``archzoo_bn_buffers == keras_non_trainable``."""
    buffers = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return {
        "archzoo": sum(p.numel() for p in model.parameters()),
        "archzoo_bn_buffers": int(buffers),
        "keras_trainable": int(sum(math.prod(w.shape) for w in kmodel.trainable_weights)),
        "keras_non_trainable": int(sum(math.prod(w.shape) for w in kmodel.non_trainable_weights)),
    }


# ----------------------------------------------------------------------------- config


def keras_config(recipe: str, overrides: list[str]) -> tuple[Config, dict[str, Any]]:
    """The recipe's config as the Keras path runs it, and what it replaced.

    Keras's schedule is ``ReduceLROnPlateau``: ``optim.scheduler`` becomes ``plateau`` unless an
    override sets it, and a recipe without early stopping gets a patience of ``DEFAULT_PATIENCE``
    unless an override sets ``train.early_stopping``. Everything else is checked by :func:`check_config`.
    """
    keys = {".".join(parse_override(o)[0]) for o in overrides}
    base = load_config(recipe, None, overrides)
    replaced: dict[str, Any] = {}
    extra: list[str] = []
    if "optim.scheduler" not in keys and base.optim.scheduler not in ("plateau", "none"):
        replaced["optim.scheduler"] = base.optim.scheduler
        extra.append("optim.scheduler=plateau")
    if "train.early_stopping" not in keys and base.train.early_stopping == 0:
        replaced["train.early_stopping"] = 0
        extra.append(f"train.early_stopping={DEFAULT_PATIENCE}")
    cfg = load_config(recipe, None, [*extra, *overrides])
    check_config(cfg)
    return cfg, replaced


def _refuse(cond: bool, msg: str) -> None:
    if cond:
        raise UserError(msg)


def check_config(cfg: Config) -> None:
    """Refuse, in one sentence each, the options Keras's compile/fit path cannot honour."""
    o, t, m = cfg.optim, cfg.train, cfg.model
    _refuse(m.name not in MODELS, f"archzoo keras translates the models {', '.join(MODELS)}, not '{m.name}'.")
    _refuse(m.compile, "model.compile does not apply to Keras models; leave it false.")
    _refuse(
        m.freeze != "none" or m.backbone_lr is not None,
        "model.freeze and model.backbone_lr are not available on the Keras path.",
    )
    _refuse(
        cfg.task.name not in ("classification", "regression"),
        f"archzoo keras trains classification and regression tasks, not '{cfg.task.name}'.",
    )
    allowed = {"classification": {"label_smoothing"}, "regression": {"loss"}}[cfg.task.name]
    extra = sorted(set(cfg.task.args) - allowed)
    _refuse(bool(extra), f"task.args.{extra[0] if extra else ''} is not available on the Keras path.")
    _refuse(
        o.name not in (None, *OPTIMIZERS),
        f"archzoo keras maps the optimizers {', '.join(OPTIMIZERS)}, not optim.name={o.name}.",
    )
    _refuse(
        o.weight_decay > 0 and (o.name or "adamw") != "adamw",
        f"optim.weight_decay with {o.name} is an L2 gradient term in archzoo but a decoupled decay in Keras; "
        "use optim.name=adamw or optim.weight_decay=0.",
    )
    _refuse(o.l1 > 0 or o.l2 > 0, "optim.l1 and optim.l2 penalties are not available on the Keras path.")
    _refuse(bool(o.slots), "optim.slots do not apply to Keras's single optimizer.")
    _refuse(
        o.scheduler not in ("plateau", "none"),
        f"The Keras path schedules with ReduceLROnPlateau; optim.scheduler must be plateau or none, got {o.scheduler}.",
    )
    _refuse(o.warmup_epochs > 0 or o.warmup_steps > 0, "Learning-rate warmup is not available with ReduceLROnPlateau.")
    _refuse(t.precision != "fp32", f"train.precision={t.precision} is not available on the Keras path; use fp32.")
    _refuse(t.device == "mps", "train.device=mps is not available on the Keras path; use cpu or cuda.")
    _refuse(t.eval_every != 0 or not t.eval_epoch_end, "Keras validates at epoch ends only; leave train.eval_every=0.")
    _refuse(
        t.max_steps != 0 or t.max_time != 0, "train.max_steps and train.max_time are not available on the Keras path."
    )
    _refuse(t.ema_decay != 0, "train.ema_decay is not available on the Keras path.")
    unit, every = t.checkpoint_schedule()
    _refuse(
        unit == "seconds" or (unit == "epochs" and every > 1),
        "Keras's ModelCheckpoint saves every epoch or every N steps; use train.checkpoint_every=epoch or 'N steps'.",
    )
    monitor = t.monitor or ("val/acc" if cfg.task.name == "classification" else "val/rmse")
    named = ("val/loss", "val/acc") if cfg.task.name == "classification" else ("val/loss", "val/rmse", "val/mae")
    _refuse(monitor not in named, f"train.monitor={monitor} has no Keras metric here; use one of {', '.join(named)}.")


# ----------------------------------------------------------------------------- data


def split_arrays(split: Any, channels_last: bool, num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A TensorSplit's own tensors as numpy arrays: images NHWC when ``channels_last``, labels one-hot
    (Keras's categorical cross-entropy takes label smoothing only on one-hot targets), targets ``(N, 1)``."""
    x, y = split.tensors[0].cpu(), split.tensors[1].cpu()
    if channels_last and x.dim() == 4:
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    xa = np.ascontiguousarray(x.numpy())
    if num_classes is not None:
        ya = np.eye(num_classes, dtype=np.float32)[y.numpy()]  # (N,) -> (N, classes)
    else:
        ya = y.numpy().astype(np.float32).reshape(len(y), -1)  # (N,) -> (N, 1)
    return xa, ya


def _augmented_batches(
    keras: Any, split: Any, batch_size: int, seed: int, channels_last: bool, num_classes: int | None
) -> Any:
    """A Keras ``PyDataset`` over the train split's tensors that applies archzoo's own batched
    augmentation, with archzoo's order and augmentation draws for each (epoch, batch)."""
    from archzoo.data.splits import epoch_generator

    x_all, y_all = split.tensors[0].cpu(), split.tensors[1].cpu()

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.order = torch.randperm(len(x_all), generator=epoch_generator(seed, 0))

        def __len__(self) -> int:
            return split.num_batches(batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            x = split.augment(x_all.index_select(0, idx), epoch_generator(seed, self.epoch, stream=1 + i))
            if channels_last:
                x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
            y = y_all.index_select(0, idx).numpy()
            ya = np.eye(num_classes, dtype=np.float32)[y] if num_classes else y.astype(np.float32).reshape(len(y), -1)
            return np.ascontiguousarray(x.numpy()), ya

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = torch.randperm(len(x_all), generator=epoch_generator(seed, self.epoch))

    return Batches()


# ----------------------------------------------------------------------------- metrics and callbacks


_CUSTOM: dict[str, Any] = {}


def _custom(keras: Any) -> dict[str, Any]:
    """Keras classes of this module, defined once (Keras is imported lazily) and registered so a
    saved ``.keras`` file loads again."""
    if _CUSTOM:
        return _CUSTOM
    from torch.utils.tensorboard import SummaryWriter

    reg = keras.saving.register_keras_serializable(package="archzoo")

    def scaled(base: Any, cls_name: str, metric: str) -> Any:
        """``base`` over all samples in the target's original units: ``std * metric(standardised)``."""

        def __init__(self: Any, scale: float = 1.0, name: str = metric, **kw: Any) -> None:
            base.__init__(self, name=name, **kw)
            self.scale = float(scale)

        def result(self: Any) -> Any:
            return base.result(self) * self.scale

        def get_config(self: Any) -> dict[str, Any]:
            return {**base.get_config(self), "scale": self.scale}

        doc = f"{metric.upper()} in the target's original units: ``std * {metric.upper()}(standardised)``."
        attrs = {"__init__": __init__, "result": result, "get_config": get_config, "__doc__": doc}
        return reg(type(cls_name, (base,), attrs))

    ScaledRMSE = scaled(keras.metrics.RootMeanSquaredError, "ScaledRMSE", "rmse")
    ScaledMAE = scaled(keras.metrics.MeanAbsoluteError, "ScaledMAE", "mae")

    class StepLog(keras.callbacks.Callback):
        """Every ``every`` optimizer steps, the training loss into ``steps.csv`` (and TensorBoard)."""

        def __init__(self, path: Path, every: int, events: Any | None) -> None:
            super().__init__()
            self.path, self.every, self.events = path, every, events
            self.step, self.epoch, self.rows = 0, 0, []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.step += 1
            if self.step % self.every == 0 and logs and "loss" in logs:
                loss = float(logs["loss"])  # Keras's running mean of the epoch so far
                self.rows.append((self.epoch + 1, self.step, loss))
                if self.events is not None:
                    self.events.add_scalar("train/loss_step", loss, self.step)

        def on_train_end(self, logs: dict | None = None) -> None:
            with open(self.path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["epoch", "step", "train/loss"])
                w.writerows(self.rows)

    class Events(keras.callbacks.Callback):
        """Each epoch's logs as TensorBoard scalars, through torch's SummaryWriter, as the engine writes them."""

        def __init__(self, run_dir: Path) -> None:
            super().__init__()
            self.writer = SummaryWriter(str(run_dir))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for k, v in (logs or {}).items():
                self.writer.add_scalar(k, float(v), epoch + 1)
            self.writer.flush()

        def on_train_end(self, logs: dict | None = None) -> None:
            self.writer.close()

    _CUSTOM.update(ScaledRMSE=ScaledRMSE, ScaledMAE=ScaledMAE, StepLog=StepLog, Events=Events)
    return _CUSTOM


def _optimizer(keras: Any, cfg: Config) -> Any:
    o = cfg.optim.for_slot("model")
    common: dict[str, Any] = {"learning_rate": o.lr}
    if cfg.train.grad_clip > 0:
        common["global_clipnorm"] = cfg.train.grad_clip
    if cfg.train.grad_accum > 1:
        common["gradient_accumulation_steps"] = cfg.train.grad_accum
    if o.name == "sgd":
        return keras.optimizers.SGD(momentum=o.momentum, nesterov=o.nesterov, **common)
    b1, b2 = o.betas
    if o.name == "adam":
        return keras.optimizers.Adam(beta_1=b1, beta_2=b2, epsilon=o.eps, **common)
    opt = keras.optimizers.AdamW(weight_decay=o.weight_decay, beta_1=b1, beta_2=b2, epsilon=o.eps, **common)
    # archzoo never decays biases and norms; Keras's variable names say which those are.
    opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt


def _loss_and_metrics(keras: Any, cfg: Config, info: dict[str, Any]) -> tuple[Any, list[Any]]:
    if cfg.task.name == "classification":
        ls = float(cfg.task.args.get("label_smoothing", 0.0))
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=ls)
        return loss, [keras.metrics.CategoricalAccuracy(name="acc")]
    name = cfg.task.args.get("loss", "mse")
    losses = {"mse": keras.losses.MeanSquaredError, "l1": keras.losses.MeanAbsoluteError, "huber": keras.losses.Huber}
    if name not in losses:
        raise UserError(f"task.args.loss must be one of {', '.join(losses)}, got '{name}'.")
    scale = float(info.get("target_std", 1.0))
    c = _custom(keras)
    return losses[name](), [c["ScaledRMSE"](scale), c["ScaledMAE"](scale)]


# ----------------------------------------------------------------------------- training


def _verbose(progress: str) -> Any:
    return {"auto": "auto", "bar": 1, "lines": 2, "none": 0}[progress]


def train_keras(
    cfg: Config,
    api: str = "sequential",
    run_dir: str | Path | None = None,
    data_dir: str | None = None,
    replaced: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the recipe's model as a Keras model with ``compile``/``fit`` and write a run directory.

    Args:
        cfg: a config checked by :func:`check_config` (:func:`keras_config` builds one from a recipe).
        api: ``"sequential"`` or ``"functional"`` (default ``"sequential"``).
        run_dir: where to write (default ``<log.dir>/<recipe>-keras/<timestamp>``).
        data_dir: the data root (else ``ARCHZOO_DATA``, else a cache directory).
        replaced: recipe values the Keras path replaced (recorded in results.json).

    The run directory gets ``config.yaml``, ``history.csv`` (Keras's History, one row per epoch),
    ``steps.csv`` (training loss every ``train.log_every`` steps), ``curves.png`` (when
    ``log.plots``), TensorBoard events (when ``log.tensorboard``), ``checkpoints/best.keras``
    (``ModelCheckpoint``, best ``train.monitor``), ``checkpoints/last.keras`` (every
    ``train.checkpoint_every``), ``checkpoints/final.keras`` (the weights tested: the best ones
    when EarlyStopping ran, which restores them) and ``results.json`` (test metrics, seconds, parameter counts).
    Returns the content of results.json.
    """
    check_config(cfg)
    if api not in APIS:
        raise UserError(f"--api must be sequential or functional, got '{api}'.")
    keras = get_keras()
    from archzoo.data.splits import TensorSplit
    from archzoo.engine.builders import build_data, build_model, resolve_device, seed_everything
    from archzoo.engine.trainer import new_run_dir

    t = cfg.train
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    device = resolve_device(t.device)
    _refuse(
        device.type == "cuda" and cfg.data.on_device,
        "On CUDA, Keras feeds each batch from host arrays; pass data.on_device=false to say so.",
    )
    seed_everything(t.seed, t.deterministic)
    keras.utils.set_random_seed(t.seed)
    bundle = build_data(cfg, data_dir)
    for s in ("train", "val", "test"):
        _refuse(
            not isinstance(getattr(bundle, s), TensorSplit),
            f"Dataset '{cfg.data.name}' has no in-memory {s} split for Keras.",
        )
    info = bundle.info
    model = build_model(cfg, info)  # archzoo's own model: its layers, init and (pretrained) weights
    nhwc = cfg.model.channels_last and bundle.train.tensors[0].dim() == 4 and cfg.model.name.startswith("convnet")
    num_classes = int(info["num_classes"]) if cfg.task.name == "classification" else None
    x_tr, y_tr = split_arrays(bundle.train, nhwc, num_classes)
    x_va, y_va = split_arrays(bundle.val, nhwc, num_classes)
    x_te, y_te = split_arrays(bundle.test, nhwc, num_classes)

    run = Path(run_dir) if run_dir else new_run_dir(dataclasses.replace(cfg, recipe=f"{cfg.recipe}-keras"))
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    cfg.save(run / "config.yaml")
    monitor = _MONITORS[t.monitor or ("val/acc" if num_classes else "val/rmse")]
    mode = t.mode or ("max" if monitor == "val_acc" else "min")
    c = _custom(keras)
    with keras.device(str(device)):
        kmodel = to_keras(
            model, x_tr.shape[1:], api, "channels_last" if nhwc else "channels_first", name=cfg.model.name
        )
        loss, metrics = _loss_and_metrics(keras, cfg, info)
        kmodel.compile(optimizer=_optimizer(keras, cfg), loss=loss, metrics=metrics)
        unit, every = t.checkpoint_schedule()
        callbacks: list[Any] = [
            keras.callbacks.ModelCheckpoint(
                run / "checkpoints" / "best.keras", monitor=monitor, mode=mode, save_best_only=True
            ),
            keras.callbacks.ModelCheckpoint(
                run / "checkpoints" / "last.keras", save_freq="epoch" if unit == "epochs" else int(every)
            ),
            c["StepLog"](run / "steps.csv", t.log_every, None),
        ]
        if t.early_stopping > 0:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor,
                    mode=mode,
                    patience=t.early_stopping,
                    min_delta=t.min_delta,
                    restore_best_weights=True,
                )
            )
        if cfg.optim.scheduler == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor=monitor,
                    mode=mode,
                    factor=cfg.optim.gamma,
                    patience=cfg.optim.plateau_patience,
                    min_delta=t.min_delta,
                    min_lr=cfg.optim.min_lr,
                )
            )
        if cfg.log.tensorboard:
            ev = c["Events"](run)
            callbacks[2].events = ev.writer
            callbacks.append(ev)
        if cfg.data.augment:
            train_data: Any = _augmented_batches(keras, bundle.train, cfg.data.train_batch, t.seed, nhwc, num_classes)
            fit_kw: dict[str, Any] = {}
        else:
            train_data, fit_kw = x_tr, {"y": y_tr, "batch_size": cfg.data.train_batch, "shuffle": True}
        t0 = time.perf_counter()
        hist = kmodel.fit(
            train_data,
            epochs=t.epochs,
            validation_data=(x_va, y_va),
            validation_batch_size=cfg.data.eval_batch,
            callbacks=callbacks,
            verbose=_verbose(cfg.log.progress),
            **fit_kw,
        )
        seconds = time.perf_counter() - t0
        kmodel.save(run / "checkpoints" / "final.keras")  # the weights EarlyStopping restored
        test = kmodel.evaluate(x_te, y_te, batch_size=cfg.data.eval_batch, verbose=0, return_dict=True)
    history = hist.history
    write_history(history, run / "history.csv")
    if cfg.log.plots:
        plot_history(history, run / "curves.png", cfg.recipe, api)
    best = min if mode == "min" else max
    scores = history.get(monitor, [])
    results = {
        "recipe": cfg.recipe,
        "api": api,
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        **{f"test/{k}": float(v) for k, v in test.items()},
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": scores.index(best(scores)) + 1 if scores else None,
        "monitor": monitor,
        "train_seconds": round(seconds, 3),
        "threads": torch.get_num_threads(),
        "params": param_counts(model, kmodel),
        "replaced": replaced or {},
        "run_dir": str(run),
    }
    (run / "results.json").write_text(json.dumps(results, indent=2))
    return results


def write_history(history: dict[str, list[float]], path: Path) -> Path:
    """Keras's ``History.history`` as CSV: an ``epoch`` column and one column per logged key."""
    keys = list(history)
    n = max((len(v) for v in history.values()), default=0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *keys])
        for i in range(n):
            w.writerow([i + 1, *(f"{float(history[k][i]):.6g}" for k in keys)])
    return path


def plot_history(history: dict[str, list[float]], path: Path, recipe: str, api: str) -> Path:
    """Loss and metric curves of a Keras History, train beside validation, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, k in zip(axes[0], names, strict=True):
        epochs = range(1, len(history[k]) + 1)
        ax.plot(epochs, history[k], label=f"train {k}")
        if f"val_{k}" in history:
            ax.plot(epochs, history[f"val_{k}"], label=f"val {k}")
        ax.set_xlabel("epoch")
        ax.set_title(k)
        ax.legend()
    fig.suptitle(f"{recipe} (Keras, {api})")
    return save_figure(fig, path, dpi=100)
