"""Inspection of a model on its data: gradients, weights, activations, the data itself, and gradient checks.

``archzoo inspect RUN|RECIPE`` builds what the trainer would build (through
:mod:`archzoo.engine.builders`; a finished run is opened with
:func:`~archzoo.engine.run.load_run`, without a Trainer) and reports, over one or
``--batches N`` real training batches drawn as the first epoch draws them:

* **gradients** per parameter of the task's own training step (its loss, each
  optimizer slot's parameters, nothing stepped): the mean and the maximum of
  :math:`|g|` of the gradient averaged over the batches, with a warning for a
  vanishing gradient (:math:`\\max |g| < 10^{-7}`) and an exploding one
  (:math:`\\max |g| > 10^{3}` or not finite);
* **weights** per parameter: mean, standard deviation, minimum, maximum and the
  fraction of exact zeros;
* **activations** per leaf module through forward hooks on the first batch: the
  mean and standard deviation of its output and, for the ReLU family, the
  fraction of dead units, those whose output is :math:`\\le 0` (zero, for ReLU)
  for every sample of the batch (dim 0 counts the samples);
* **data**: shapes, mean, standard deviation, minimum, maximum and NaN/inf counts
  of the training inputs, the label distribution and the class imbalance
  :math:`\\max_c n_c / \\min_c n_c`, drawn as a PNG (label histogram and value histogram).

``archzoo inspect --gradcheck NAME`` compares autograd's gradients with central
differences in float64 (:func:`torch.autograd.gradcheck`),
:math:`\\partial f / \\partial x_i \\approx (f(x + \\epsilon e_i) - f(x - \\epsilon e_i)) / 2\\epsilon`,
with respect to the floating inputs and the parameters of a layer of
:data:`GRADCHECK_LAYERS` or of any registered model (on its ``example_input``).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.tasks.base import Task, to_device
from archzoo.viz.figure import save_figure

VANISHING = 1e-7  # max |g| below this: the parameter learns (almost) nothing
EXPLODING = 1e3  # max |g| above this (or not finite): a step at a usual learning rate overshoots
RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU)
DATA_BATCHES = 64  # batches read for the data check of a split that is not one in-memory tensor


# ----------------------------------------------------------------------------- opening a target


@dataclass
class Target:
    """What is inspected: a freshly built recipe or a finished run's model, with its task and data."""

    name: str
    cfg: Any
    model: nn.Module
    task: Task
    data: Any
    info: dict[str, Any]
    device: torch.device
    run_dir: Path | None = None
    weights: str | None = None


def open_target(target: str, overrides: list[str], data_dir: str | None = None, weights: str = "final") -> Target:
    """A run directory (its weights loaded, no Trainer) or a recipe built fresh as the trainer builds it."""
    from archzoo.engine.builders import build_data, build_model, build_task, resolve_device, seed_everything
    from archzoo.engine.pretrained import set_trainable

    path = Path(target)
    if (path / "config.yaml").is_file():
        if overrides:
            raise UserError(
                f"Overrides apply to a recipe; run {path} is inspected with the config it was trained with."
            )
        from archzoo.engine.run import load_run

        run = load_run(path, data_dir, weights)
        cfg = run.cfg
        seed_everything(cfg.train.seed)
        model, task, data, info, device = run.model, run.task, run.data, run.info, run.device
        out = Target(cfg.recipe, cfg, model, task, data, info, device, path, weights)
    else:
        if weights != "final":
            raise UserError("--weights applies to a run directory, not to a recipe, which is built fresh.")
        from archzoo.config import load_config

        cfg = load_config(target, None, overrides)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        device = resolve_device(cfg.train.device)
        seed_everything(cfg.train.seed)
        data = build_data(cfg, data_dir)
        info = dict(data.info)
        if cfg.data.on_device and device.type != "cpu":
            data = data.to(device)
        model = build_model(cfg, info).to(device)
        task = build_task(cfg)
        task.setup(model, info, device)
        out = Target(target, cfg, model, task, data, info, device)
    set_trainable(out.model, out.cfg.model.freeze, out.cfg.model.unfreeze_after, 0)
    return out


def training_batches(t: Target, n: int) -> list[Any]:
    """The first ``n`` training batches of epoch 0, drawn (and augmented) as the trainer draws them."""
    cfg = t.cfg
    mf = torch.channels_last if cfg.model.channels_last else None
    it = t.data.train.batches(cfg.data.train_batch, shuffle=True, seed=cfg.train.seed, epoch=0, augment=True)
    out = []
    for batch in it:
        out.append(to_device(batch, t.device, mf))
        if len(out) >= n:
            break
    if not out:
        raise UserError(f"The training split of recipe '{t.name}' holds no batch.")
    return out


# ----------------------------------------------------------------------------- gradients


class GradientContext:
    """A step context that records each optimizer slot's gradients and steps nothing.

    ``backward(loss, name)`` adds :math:`\\partial\\, \\text{loss} / \\partial \\theta` for the
    parameters of slot ``name`` (from :meth:`Task.optimizers`), scaled by ``scale``; the weights
    do not change, so every batch sees the same model.
    """

    def __init__(self, model: nn.Module, task: Task, device: torch.device, scale: float = 1.0) -> None:
        self.global_step = 0
        self.epoch = 0
        self.device = device
        self.scale = scale
        names = {id(p): n for n, p in model.named_parameters()}
        self.slots: dict[str, list[tuple[str, Tensor]]] = {}
        for slot, (module, _) in task.optimizers(model).items():
            self.slots[slot] = [(names.get(id(p), n), p) for n, p in module.named_parameters() if p.requires_grad]
        self.grads: dict[str, Tensor] = {}
        self.used: set[str] = set()
        self.calls = 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # gradients are inspected in fp32

    def backward(self, loss: Tensor, name: str = "main") -> None:
        params = self.slots.get(name)
        if params is None:
            raise UserError(f"The task back-propagates for optimizer '{name}', which it does not name.")
        self.calls += 1
        if not params:
            return
        grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
        for (pname, p), g in zip(params, grads, strict=True):
            if g is None:
                g = torch.zeros_like(p)
            else:
                self.used.add(pname)
            g = g.detach() * self.scale
            self.grads[pname] = self.grads[pname] + g if pname in self.grads else g

    def step(self, name: str = "main") -> bool:
        return False  # nothing is stepped: the inspection leaves the weights as they are


def gradient_stats(model: nn.Module, task: Task, batches: list[Any], device: torch.device) -> dict[str, Any]:
    """Per parameter: mean and max :math:`|g|` of the gradient averaged over ``batches``, and warnings."""
    model.train()
    ctx = GradientContext(model, task, device, scale=1.0 / len(batches))
    losses = []
    for batch in batches:
        try:
            logs = task.training_step(model, batch, ctx)
        except TypeError as e:
            raise UserError(f"Task '{type(task).__name__}' cannot be inspected: {e}.") from None
        losses.append(logs["loss"].detach().float())
    rows = {}
    warnings = []
    for name, g in ctx.grads.items():
        a = g.abs().float()
        finite = bool(torch.isfinite(a).all())
        mx = float(a.max()) if a.numel() else 0.0
        row = {
            "shape": list(g.shape),
            "mean_abs": float(a.mean()) if a.numel() else 0.0,
            "max_abs": mx,
            "norm": float(g.float().norm()),
            "finite": finite,
            "used": name in ctx.used,
            "warning": None,
        }
        if not finite or mx > EXPLODING:
            row["warning"] = "exploding"
        elif name in ctx.used and mx < VANISHING:
            row["warning"] = "vanishing"
        elif name not in ctx.used:
            row["warning"] = "unused"
        if row["warning"]:
            warnings.append(f"{name}: {row['warning']} gradient (max |g| = {mx:.3g})")
        rows[name] = row
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    return {
        "batches": len(batches),
        "loss": float(torch.stack(losses).mean()),
        "parameters": rows,
        "frozen": frozen,
        "warnings": warnings,
    }


# ----------------------------------------------------------------------------- weights


def weight_stats(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per parameter: mean, std, min, max and the fraction of exact zeros."""
    out = {}
    for name, p in model.named_parameters():
        w = p.detach().float()
        out[name] = {
            "shape": list(w.shape),
            "mean": float(w.mean()),
            "std": float(w.std()) if w.numel() > 1 else 0.0,
            "min": float(w.min()),
            "max": float(w.max()),
            "zeros": float((w == 0).float().mean()),
        }
    return out


# ----------------------------------------------------------------------------- activations


def _first_tensor(out: Any) -> Tensor | None:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


@dataclass
class _Acc:
    """Running sums of one module's outputs over its calls."""

    kind: str
    relu: bool
    calls: int = 0
    n: int = 0
    total: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    squares: Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    alive: Tensor | None = None  # per unit: positive for some sample in some call (same shape each call)
    shape: tuple[int, ...] = ()
    mixed: bool = False


@contextlib.contextmanager
def activation_hooks(model: nn.Module) -> Iterator[dict[str, _Acc]]:
    """Forward hooks on every leaf module (ReLU-family ones included); yields the stats they gather."""
    stats: dict[str, _Acc] = {}
    handles = []

    def hook(name: str, module: nn.Module) -> Callable[..., None]:
        relu = isinstance(module, RELU_FAMILY)

        def fn(_m: nn.Module, _inp: Any, out: Any) -> None:
            t = _first_tensor(out)
            if t is None or not t.is_floating_point() or t.dim() == 0 or t.is_sparse:
                return
            acc = stats.setdefault(name, _Acc(type(module).__name__, relu))
            o = t.detach().float()
            acc.calls += 1
            acc.n += o.numel()
            acc.total = acc.total + o.sum().double().cpu()
            acc.squares = acc.squares + o.pow(2).sum().double().cpu()
            if relu:
                flat = o.reshape(o.shape[0], -1)  # (samples, units)
                alive = (flat > 0).any(0)
                if acc.alive is None:
                    acc.alive, acc.shape = alive, tuple(o.shape[1:])
                elif acc.shape == tuple(o.shape[1:]):
                    acc.alive = acc.alive | alive
                else:
                    acc.mixed = True

        return fn

    for name, module in model.named_modules():
        if next(module.children(), None) is None and name:
            handles.append(module.register_forward_hook(hook(name, module)))
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


def activation_summary(stats: dict[str, _Acc]) -> dict[str, dict[str, Any]]:
    """The gathered sums as mean, std and dead fraction per module, in call order."""
    out = {}
    for name, a in stats.items():
        mean = float(a.total) / max(a.n, 1)
        var = max(float(a.squares) / max(a.n, 1) - mean * mean, 0.0)
        dead = None
        if a.relu and a.alive is not None and not a.mixed:
            dead = float((~a.alive).float().mean())
        out[name] = {"module": a.kind, "calls": a.calls, "mean": mean, "std": math.sqrt(var), "dead": dead}
    return out


# ----------------------------------------------------------------------------- data


def _fields(batch: Any) -> tuple[Tensor | None, Tensor | None]:
    """The inputs and the labels of one batch (labels restricted to a full graph's mask)."""
    if isinstance(batch, (tuple, list)):
        x = batch[0] if batch and isinstance(batch[0], Tensor) else None
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], Tensor) else None
        return x, y
    x, y = getattr(batch, "x", None), getattr(batch, "y", None)
    mask = getattr(batch, "mask", None)
    if isinstance(y, Tensor) and isinstance(mask, Tensor) and mask.dtype == torch.bool and mask.shape == y.shape[:1]:
        y = y[mask]
    return (x if isinstance(x, Tensor) else None), (y if isinstance(y, Tensor) else None)


def _data_chunks(split: Any, batch_size: int) -> tuple[list[tuple[Tensor | None, Tensor | None]], int, bool]:
    """The split's (inputs, labels) in chunks: all of an in-memory split, else its first batches."""
    from archzoo.data.splits import TensorSplit

    if isinstance(split, TensorSplit):
        x = split.tensors[0]
        y = split.tensors[1] if len(split.tensors) > 1 else None
        step = 4096
        chunks = [(x[i : i + step], None if y is None else y[i : i + step]) for i in range(0, len(x), step)]
        return chunks, len(x), True
    chunks = []
    for i, batch in enumerate(split.batches(batch_size)):
        if i >= DATA_BATCHES:
            break
        chunks.append(_fields(batch))
    return chunks, len(chunks), split.num_batches(batch_size) <= DATA_BATCHES


def data_check(split: Any, info: dict[str, Any], batch_size: int, bins: int = 50) -> dict[str, Any]:
    """Shapes, moments, range, NaN/inf counts, value histogram and label distribution of a split."""
    chunks, count, whole = _data_chunks(split, batch_size)
    xs = [x for x, _ in chunks if x is not None]
    ys = [y for _, y in chunks if y is not None]
    out: dict[str, Any] = {"examples": len(split), "read": "all" if whole else f"the first {count} batches"}
    warnings: list[str] = []
    if xs:
        xs = [x.to_dense() if x.layout != torch.strided else x for x in xs]
        out["input_shape"] = list(xs[0].shape[1:])
        out["input_dtype"] = str(xs[0].dtype).removeprefix("torch.")
        n = sum(x.numel() for x in xs)
        nan = sum(int(torch.isnan(x).sum()) for x in xs if x.is_floating_point())
        inf = sum(int(torch.isinf(x).sum()) for x in xs if x.is_floating_point())
        finite = [x.double()[torch.isfinite(x.double())] for x in xs]
        total = sum(float(f.sum()) for f in finite)
        squares = sum(float(f.pow(2).sum()) for f in finite)
        m = sum(f.numel() for f in finite)
        mean = total / max(m, 1)
        lo = min((float(f.min()) for f in finite if f.numel()), default=math.nan)
        hi = max((float(f.max()) for f in finite if f.numel()), default=math.nan)
        out.update(
            values=n,
            mean=mean,
            std=math.sqrt(max(squares / max(m, 1) - mean * mean, 0.0)),
            min=lo,
            max=hi,
            nan=nan,
            inf=inf,
        )
        if nan or inf:
            warnings.append(f"the inputs hold {nan} NaN and {inf} infinite values")
        if m and math.isfinite(lo):
            edges = torch.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1, dtype=torch.float64)
            counts = sum(torch.histc(f, bins, float(edges[0]), float(edges[-1])) for f in finite)
            out["value_histogram"] = {"edges": edges.tolist(), "counts": [int(c) for c in counts.tolist()]}
    if ys:
        y = torch.cat([t.reshape(-1).cpu() for t in ys])
        if not y.is_floating_point():
            y = y[y >= 0]  # padding labels (-100) are not examples
            c = int(info.get("num_classes") or (int(y.max()) + 1 if y.numel() else 0))
            counts = torch.bincount(y, minlength=c) if y.numel() else torch.zeros(c, dtype=torch.int64)
            out["labels"] = {"classes": len(counts), "counts": [int(v) for v in counts.tolist()]}
            names = info.get("classes")
            if isinstance(names, list) and len(names) == len(counts):
                out["labels"]["names"] = [str(v) for v in names]
            present = counts[counts > 0]
            if len(present) < len(counts):
                missing = [i for i, v in enumerate(counts.tolist()) if v == 0]
                warnings.append(f"{len(missing)} classes have no training example (first: {missing[0]})")
                out["imbalance"] = None
            elif len(counts):
                out["imbalance"] = float(counts.max()) / float(counts.min())
        else:
            yf = y.double()
            out["targets"] = {
                "mean": float(yf.mean()),
                "std": float(yf.std()) if yf.numel() > 1 else 0.0,
                "min": float(yf.min()),
                "max": float(yf.max()),
                "nan": int(torch.isnan(yf).sum()),
            }
    out["warnings"] = warnings
    return out


def plot_data_check(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """The label histogram and the value histogram of :func:`data_check`, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    labels = report.get("labels")
    if labels:
        counts = labels["counts"]
        ax1.bar(range(len(counts)), counts, color="tab:blue")
        names = labels.get("names")
        if names and len(names) <= 20:
            ax1.set_xticks(range(len(counts)), names, rotation=45, ha="right", fontsize=8)
        imb = report.get("imbalance")
        ax1.set_title(f"labels ({labels['classes']} classes, max/min = {imb:.2f})" if imb else "labels")
        ax1.set_xlabel("class")
        ax1.set_ylabel("examples")
    else:
        ax1.text(0.5, 0.5, "no class labels", ha="center", va="center")
        ax1.set_axis_off()
    hist = report.get("value_histogram")
    if hist:
        edges, counts = hist["edges"], hist["counts"]
        ax2.stairs(counts, edges, fill=True, color="tab:orange")
        ax2.set_yscale("log")
        ax2.set_title(f"input values (mean {report['mean']:.3g}, std {report['std']:.3g})")
        ax2.set_xlabel("value")
        ax2.set_ylabel("count")
    else:
        ax2.set_axis_off()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=100)


# ----------------------------------------------------------------------------- the whole inspection


def inspect(t: Target, batches: int = 1) -> dict[str, Any]:
    """Everything ``archzoo inspect`` reports on ``t``, as one JSON-ready dict."""
    if batches < 1:
        raise UserError(f"--batches must be at least 1, got {batches}.")
    drawn = training_batches(t, batches)
    weights = weight_stats(t.model)  # before anything runs (batch norm statistics move in train mode)
    with activation_hooks(t.model) as acts:
        first = gradient_stats(t.model, t.task, drawn[:1], t.device)
    grads = gradient_stats(t.model, t.task, drawn, t.device) if len(drawn) > 1 else first
    t.model.eval()
    data = data_check(t.data.train, t.info, t.cfg.data.eval_batch)
    warnings = [*grads["warnings"], *data["warnings"]]
    activations = activation_summary(acts)
    for name, a in activations.items():
        if a["dead"] is not None and a["dead"] > 0.5:
            warnings.append(f"{name}: {a['dead']:.0%} of its units are dead on this batch")
    return {
        "target": t.name,
        "run_dir": str(t.run_dir) if t.run_dir else None,
        "weights": t.weights,
        "model": t.cfg.model.name,
        "task": t.cfg.task.name,
        "batch_size": t.cfg.data.train_batch,
        "batches_requested": batches,
        "gradients": grads,
        "weights_stats": weights,
        "activations": activations,
        "data": data,
        "warnings": warnings,
    }


def _g(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def format_report(r: dict[str, Any]) -> str:
    """The report as aligned tables for a terminal."""
    lines = [f"inspect {r['target']} (model {r['model']}, task {r['task']}, batch {r['batch_size']})"]
    g = r["gradients"]
    lines += ["", f"gradients over {g['batches']} training batch(es), loss {g['loss']:.4g}"]
    lines.append(f"{'parameter':<44} {'shape':<18} {'mean|g|':>10} {'max|g|':>10}  warning")
    for name, row in g["parameters"].items():
        shape = "x".join(map(str, row["shape"])) or "1"
        lines.append(
            f"{name:<44} {shape:<18} {_g(row['mean_abs']):>10} {_g(row['max_abs']):>10}  {row['warning'] or ''}"
        )
    if g["frozen"]:
        lines.append(f"frozen (no gradient): {len(g['frozen'])} parameters")
    lines += ["", f"{'weight':<44} {'mean':>10} {'std':>10} {'min':>10} {'max':>10} {'zeros':>7}"]
    for name, w in r["weights_stats"].items():
        lines.append(
            f"{name:<44} {_g(w['mean']):>10} {_g(w['std']):>10} {_g(w['min']):>10} {_g(w['max']):>10} {w['zeros']:>7.1%}"
        )
    lines += ["", f"{'activation (first batch)':<44} {'module':<18} {'calls':>5} {'mean':>10} {'std':>10} {'dead':>7}"]
    for name, a in r["activations"].items():
        dead = f"{a['dead']:.1%}" if a["dead"] is not None else "-"
        lines.append(f"{name:<44} {a['module']:<18} {a['calls']:>5} {_g(a['mean']):>10} {_g(a['std']):>10} {dead:>7}")
    d = r["data"]
    lines += ["", f"data: train split, {d['examples']} examples, read {d['read']}"]
    if "input_shape" in d:
        lines.append(
            f"  inputs {d['input_dtype']} {tuple(d['input_shape'])}: mean {_g(d['mean'])}, std {_g(d['std'])}, "
            f"min {_g(d['min'])}, max {_g(d['max'])}, NaN {d['nan']}, inf {d['inf']}"
        )
    if "labels" in d:
        lab = d["labels"]
        lines.append(
            f"  labels: {lab['classes']} classes, counts {lab['counts']}, imbalance max/min {_g(d['imbalance'])}"
        )
    if "targets" in d:
        tg = d["targets"]
        lines.append(f"  targets: mean {_g(tg['mean'])}, std {_g(tg['std'])}, min {_g(tg['min'])}, max {_g(tg['max'])}")
    lines += ["", "warnings:" if r["warnings"] else "warnings: none"]
    lines += [f"  {w}" for w in r["warnings"]]
    return "\n".join(lines)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def write_report(r: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(r), indent=1))
    return path


# ----------------------------------------------------------------------------- gradient checks


def _ring(n: int) -> Tensor:
    """A directed ring over ``n`` nodes, both directions: edge_index :math:`(2, 2n)`."""
    i = torch.arange(n)
    j = (i + 1) % n
    return torch.stack([torch.cat([i, j]), torch.cat([j, i])])


def _layers() -> dict[str, tuple[Callable[..., nn.Module], dict[str, Any], Callable[[nn.Module], tuple[Any, ...]]]]:
    """Layers of :mod:`archzoo.layers` the check takes: builder, default arguments, example input."""
    from archzoo.layers.attention import MultiHeadAttention, SelfAttention2d
    from archzoo.layers.conv import ConvBNAct
    from archzoo.layers.convlstm import ConvLSTMCell
    from archzoo.layers.graph import GATLayer, GCNLayer
    from archzoo.layers.recurrent import ElmanCell, GRUCell, LSTMCell
    from archzoo.layers.se import SqueezeExcitation
    from archzoo.layers.transformer import FeedForward, TransformerBlock

    def cell(m: nn.Module) -> tuple[Any, ...]:
        return (torch.randn(2, m.input_size),)

    return {
        "elman_cell": (ElmanCell, {"input_size": 3, "hidden_size": 4}, cell),
        "lstm_cell": (LSTMCell, {"input_size": 3, "hidden_size": 4}, cell),
        "gru_cell": (GRUCell, {"input_size": 3, "hidden_size": 4}, cell),
        "gcn_layer": (
            GCNLayer,
            {"in_channels": 4, "out_channels": 3},
            lambda m: (torch.randn(5, m.in_channels), _ring(5)),
        ),
        "gat_layer": (
            GATLayer,
            {"in_channels": 4, "out_channels": 3, "heads": 2},
            lambda m: (torch.randn(5, m.in_channels), _ring(5)),
        ),
        "multi_head_attention": (
            MultiHeadAttention,
            {"dim": 8, "heads": 2, "attention": "manual"},
            lambda m: (torch.randn(2, 3, m.dim),),
        ),
        "transformer_block": (
            TransformerBlock,
            {"dim": 8, "heads": 2, "ff_dim": 16, "attention": "manual"},
            lambda m: (torch.randn(2, 3, m.norm1.normalized_shape[0]),),
        ),
        "feed_forward": (FeedForward, {"dim": 4, "hidden": 8}, lambda m: (torch.randn(2, m.fc1.in_features),)),
        "self_attention2d": (
            SelfAttention2d,
            {"channels": 8, "heads": 2, "groups": 2},
            lambda m: (torch.randn(2, m.norm.num_channels, 3, 3),),
        ),
        "squeeze_excitation": (
            SqueezeExcitation,
            {"channels": 8, "squeeze_channels": 2},
            lambda m: (torch.randn(2, 8, 3, 3),),
        ),
        "conv_bn_act": (ConvBNAct, {"in_channels": 2, "out_channels": 3}, lambda m: (torch.randn(2, 2, 5, 5),)),
        "conv_lstm_cell": (
            ConvLSTMCell,
            {"in_channels": 2, "hidden_channels": 3},
            lambda m: (torch.randn(2, 2, 4, 4),),
        ),
    }


def gradcheck_names() -> list[str]:
    """The layers of the table, then every registered model."""
    from archzoo.registry import list_models

    return [*_layers(), *list_models()]


def _map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``obj`` with ``fn`` applied to every tensor inside it: tuples, lists, dicts, PyG batches and
    objects holding tensors as attributes (a ``PaddedBatch``), in one fixed order."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(_map_tensors(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_map_tensors(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    keys = getattr(obj, "keys", None)
    if callable(keys) and hasattr(obj, "clone"):  # a PyG Data or Batch
        out = obj.clone()
        for key in sorted(keys()):
            if isinstance(out[key], Tensor):
                out[key] = fn(out[key])
        return out
    if hasattr(obj, "__dict__") and not isinstance(obj, nn.Module):
        import copy

        out = copy.copy(obj)
        for key, v in sorted(vars(obj).items()):
            if isinstance(v, Tensor):
                setattr(out, key, fn(v))
        return out
    return obj


def _float_tensors(obj: Any) -> list[Tensor]:
    found: list[Tensor] = []

    def collect(t: Tensor) -> Tensor:
        if t.is_floating_point():
            found.append(t)
        return t

    _map_tensors(obj, collect)
    return found


def _to_double(obj: Any) -> Any:
    return _map_tensors(obj, lambda t: t.double() if t.is_floating_point() else t)


def build_for_gradcheck(name: str, kwargs: dict[str, Any], seed: int = 0) -> tuple[nn.Module, tuple[Any, ...], str]:
    """The module (float64, eval mode) and its example input; ``kind`` is ``layer`` or ``model``."""
    torch.manual_seed(seed)
    layers = _layers()
    try:
        if name in layers:
            builder, defaults, example = layers[name]
            from archzoo.registry import _check_kwargs

            _check_kwargs(builder, kwargs, f"layer '{name}'")
            module = builder(**{**defaults, **kwargs})
            inputs = example(module)
            kind = "layer"
        else:
            from archzoo.registry import MODELS, list_models

            if name not in list_models():
                MODELS.get(name)  # the registry's one sentence, with close names
            from archzoo.registry import create_model

            module = create_model(name, **kwargs)
            inputs = tuple(module.example_input(2))
            kind = "model"
        module = module.double().eval()
        return module, tuple(_to_double(x) for x in inputs), kind
    except (RuntimeError, TypeError, ValueError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"'{name}' cannot be built for a gradient check ({first}).") from None


def gradcheck(name: str, kwargs: dict[str, Any] | None = None, full_limit: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Autograd's gradients against central differences in float64, for the inputs and the parameters.

    The check runs in full (every element perturbed) when the floating inputs and parameters hold at
    most ``full_limit`` numbers, else in gradcheck's fast mode (a random projection of the Jacobian).
    The random generator is reseeded before every forward, so a model that samples noise (a VAE)
    sees the same noise in each evaluation.
    """
    from torch.autograd.gradcheck import GradcheckError
    from torch.func import functional_call

    module, inputs, kind = build_for_gradcheck(name, kwargs or {}, seed)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in module.named_parameters()}
    buffers = dict(module.named_buffers())
    xs = _float_tensors(inputs)
    leaves = [x.detach().clone().requires_grad_(True) for x in xs]
    elements = sum(t.numel() for t in [*leaves, *params.values()])
    if not leaves and not params:
        raise UserError(f"'{name}' has neither floating inputs nor parameters to check gradients of.")

    def substitute(obj: Any, it: Iterator[Tensor]) -> Any:
        return _map_tensors(obj, lambda t: next(it) if t.is_floating_point() else t)

    names = list(params)

    def f(*flat: Tensor) -> tuple[Tensor, ...]:
        x_new, p_new = flat[: len(leaves)], flat[len(leaves) :]
        torch.manual_seed(seed)
        args = substitute(inputs, iter(x_new))
        out = functional_call(module, ({**dict(zip(names, p_new, strict=True)), **buffers}), args)
        outs = tuple(_float_tensors(out))
        if not outs:
            raise UserError(f"'{name}' returns no floating tensor to check.")
        return outs

    fast = elements > full_limit
    flat = (*leaves, *params.values())
    try:
        ok = torch.autograd.gradcheck(f, flat, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=fast, raise_exception=True)
        error = None
    except GradcheckError as e:
        ok, error = False, (str(e).strip().splitlines() or ["mismatch"])[0]
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"'{name}' cannot take a float64 gradient check ({first}).") from None
    return {
        "name": name,
        "kind": kind,
        "args": kwargs or {},
        "inputs_checked": [list(x.shape) for x in leaves],
        "parameters_checked": len(params),
        "elements": elements,
        "mode": "fast" if fast else "full",
        "passed": bool(ok),
        "error": error,
    }
