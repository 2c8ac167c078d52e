"""The task API: a task owns the objective, the engine owns the loop.

The engine calls, per training batch, ``task.training_step(model, batch, ctx)``.
The default implementation computes ``task.loss(model, batch)`` under the
context's autocast, and hands it to ``ctx.backward`` and ``ctx.step``. A task
with several optimizers (a GAN) overrides :meth:`Task.optimizers` to name them
and :meth:`Task.training_step` to call ``ctx.backward(loss, name)`` and
``ctx.step(name)`` in its own order; the loop does not change.

For evaluation the engine calls ``task.eval_step(model, batch, split)`` on every
batch of a split and then ``task.compute(split)``, which returns a dict of
floats keyed ``<split>/<metric>`` and resets the accumulators.

A task owns what a batch means:

* :meth:`Task.count` says what the logged training means are weighted by
  (samples, non-pad tokens, graphs, masked nodes);
* state carried from batch to batch (an LSTM's hidden state under truncated
  BPTT) lives on the task: the engine calls :meth:`Task.start_epoch` before the
  first batch of each training epoch (not when a run resumes in the middle of
  one), and saves :meth:`Task.extra_state` in every full checkpoint, so resume
  stays exact;
* what a user hands ``archzoo predict`` is read by :meth:`Task.read_inputs` and
  answered by :meth:`Task.predict` and :meth:`Task.describe`; ``archzoo sample``
  takes the options in :attr:`Task.sample_options` and calls :meth:`Task.sample`;
* what ``archzoo export`` traces: :meth:`Task.export_inputs` turns a batch into the
  model's named input tensors and :meth:`Task.export_forward` calls the model on them;
  a task whose output is not one forward pass (a sampler, a decoder loop) says why in
  :attr:`Task.export_refusal`.

Tasks are handed the module to call (``model``: DDP-wrapped or compiled when the
run asks for it) and reach the plain module through :func:`unwrap`; the engine
reduces gradients and evaluation metrics across ranks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class StepContext(Protocol):
    """What the engine offers a task inside one training step."""

    global_step: int
    epoch: int
    device: torch.device

    def autocast(self) -> AbstractContextManager[Any]:
        """Mixed-precision context for forward passes (a no-op in fp32)."""

    def backward(self, loss: Tensor, name: str = "main") -> None:
        """Back-propagate ``loss`` for optimizer ``name``, scaled for accumulation and fp16."""

    def step(self, name: str = "main") -> bool:
        """Clip, step and zero optimizer ``name`` on an accumulation boundary; returns whether it stepped."""


@dataclass
class Picture:
    """A picture a task asks for, as data: the engine (or ``archzoo sample``) draws it with :mod:`archzoo.viz`.

    Tasks do not import viz; they say what to draw. ``kind`` is ``grid`` (images ``(N, C, H, W)`` in
    ``value_range``, ``nrow`` per row), ``points`` (``(N, 2)`` samples), ``latents`` (``(N, >=2)``
    codes, coloured by ``labels``) or ``graphs`` (0/1 adjacency matrices ``(G, M, M)``, node counts in ``labels``).
    """

    path: Path
    kind: str
    data: Tensor
    labels: Tensor | None = None
    nrow: int | None = None
    value_range: tuple[float, float] | None = (0.0, 1.0)
    title: str | None = None


@dataclass
class ExportInput:
    """One named input tensor of an exported model and its dynamic dimensions.

    ``dims`` maps a dimension to its name (``{0: "batch", 1: "seq"}``); ``max_sizes`` caps a
    named dimension where the model has a limit (a GPT's ``block_size``).
    """

    name: str
    tensor: Tensor
    dims: dict[int, str]
    max_sizes: dict[str, int] | None = None


@dataclass(frozen=True)
class Option:
    """One option a task declares for ``archzoo sample`` or ``archzoo predict`` (``--name VALUE``)."""

    type: type
    default: Any = None
    help: str = ""


class Task(ABC):
    """Base class of all tasks.

    Attributes:
        monitor: the metric that selects the best checkpoint and drives early stopping; None keeps
            the last weights (for objectives whose validation figures do not rank checkpoints).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
    """

    monitor: str | None = "val/loss"
    mode: str = "min"

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:  # noqa: B027 - an optional hook
        """Build metrics once the model, the data's ``info`` and the device are known."""

    def optimizers(self, model: nn.Module) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        """Name each optimizer, the module it trains and its default settings (``{"lr": 2e-4}``).

        The defaults (``name``, ``lr``, ``betas``) apply where the config leaves ``optim.<field>``
        unset; ``optim.slots.<name>.<field>`` and ``optim.<field>`` win over them.
        """
        return {"main": (model, {})}

    def optimizer_steps(self, slot: str, steps: int) -> int:
        """How many times optimizer ``slot`` steps during ``steps`` optimizer steps of the loop.

        The loop counts the first slot's steps; a slot stepped less often (a WGAN-GP generator,
        once every ``n_critic`` critic steps) says so here, and its schedule is sized by it.
        """
        return steps

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Return the training loss and detached tensors to log (without split prefix)."""
        raise TypeError(f"{type(self).__name__} must define loss() or override training_step()")

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, Tensor]:
        with ctx.autocast():
            loss, logs = self.loss(model, batch)
        ctx.backward(loss)
        ctx.step()
        return {"loss": loss.detach(), **logs}

    @abstractmethod
    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        """Accumulate the metrics of ``split`` over one batch."""

    @abstractmethod
    def compute(self, split: str) -> dict[str, float]:
        """Return ``{f"{split}/{metric}": value}`` for the batches seen and reset."""

    def count(self, batch: Any) -> int | Tensor:
        """What one batch's logged means are weighted by: samples by default (the first tensor's dim 0).

        Token-level tasks return the number of non-pad tokens, graph tasks the number of graphs,
        node tasks the number of nodes in the training mask. A tensor is fine (no host sync).
        """
        return batch_size_of(batch)

    def start_epoch(self, epoch: int) -> None:  # noqa: B027 - an optional hook
        """Called before the first training batch of each epoch (reset carried state here)."""

    # ----------------------------------------------------------------- outputs for users

    predict_options: dict[str, Option] = {}
    sample_options: dict[str, Option] = {}

    def read_inputs(self, inputs: list[str], info: dict[str, Any]) -> Any:
        """Turn ``archzoo predict``'s positional inputs (files, text, SMILES, CSV rows) into a batch."""
        from archzoo.errors import UserError

        raise UserError(f"Task '{type(self).__name__}' does not take inputs to predict.")

    def predict(self, model: nn.Module, batch: Any) -> Any:
        """Map a batch of inputs to the task's output (class probabilities, values)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return model(x)

    def describe(self, outputs: Any, inputs: list[str], info: dict[str, Any], **options: Any) -> list[str]:
        """Lines for stdout, one or more per input (tab-separated: input, answer, score)."""
        return [f"{i}\t{o}" for i, o in zip(inputs, outputs, strict=False)]

    def sample(self, run: Any, out_dir: Path, **options: Any) -> list[Path | Picture]:
        """Draw samples from ``run`` (a :class:`~archzoo.engine.run.Run`: model, info, data) with the
        declared :attr:`sample_options`: files written under ``out_dir``, and pictures for viz to draw."""
        from archzoo.errors import UserError

        raise UserError(
            f"Run {getattr(run, 'run_dir', '')} is a {type(self).__name__} run, not a generative model; it draws no samples."
        )

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> list[Picture] | None:
        """Called on the main process after each epoch's evaluation; returns the pictures to draw (sample grids)."""
        return None

    # ----------------------------------------------------------------- archzoo export

    #: Why a run of this task cannot be exported as one traced forward pass (None: it can).
    export_refusal: str | None = "its output is not one forward pass of the model"

    def export_inputs(
        self, model: nn.Module, batch: Any, size: int | None = None, vary: bool = False
    ) -> list[ExportInput]:
        """The model's inputs from a data batch, cut to its first ``size`` examples (all when None).

        ``vary`` asks for inputs that also differ from the exported ones in the other dynamic
        dimensions where that is natural (shorter sequences). The default reads a tuple batch
        ``(x, ...)`` whose ``x`` the model takes alone, its first dimension dynamic.
        """
        from archzoo.errors import UserError

        x = batch[0] if isinstance(batch, (tuple, list)) else None
        if not isinstance(x, Tensor):
            raise UserError(
                f"{type(self).__name__} exports batches of tensors, and this run's batch is {type(batch).__name__}."
            )
        return [ExportInput("x", x[:size], {0: "batch"})]

    def export_forward(self, model: nn.Module, *inputs: Tensor) -> Tensor:
        """The output tensor that the export holds, from the tensors of :meth:`export_inputs`."""
        out = model(*inputs)
        return out[0] if isinstance(out, tuple) else out

    def export_reference(self, model: nn.Module, *inputs: Tensor) -> Tensor:
        """What the export is checked against: the model's own eval forward on the same inputs."""
        return self.export_forward(model, *inputs)

    def export_size(self, batch: Any) -> int:
        """How many examples ``batch`` offers :meth:`export_inputs` (dim 0 of its ``x`` or first tensor)."""
        x = getattr(batch, "x", None)
        return int(x.shape[0]) if isinstance(x, Tensor) else batch_size_of(batch)

    def export_sizes(self, available: int, size: int | None) -> tuple[int, int]:
        """The example counts to export with and to check at (another one, so the batch is dynamic)."""
        exported = min(8, available) if size is None else size
        return exported, exported // 2 if exported >= 4 else exported + 1

    def extra_state(self) -> dict[str, Any]:
        """Task state that a checkpoint must carry (tensors, numbers, strings)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - an optional hook
        pass


def sequence_cap(model: nn.Module) -> int | None:
    """The longest sequence a model takes (a GPT's ``block_size``, a BERT's ``max_len``), if it has one."""
    for m in model.modules():
        for attr in ("block_size", "max_len"):
            v = getattr(m, attr, None)
            if isinstance(v, int) and not isinstance(v, bool) and v > 1:
                return v
    return None


def collected(metrics: Any, split: str) -> dict[str, float]:
    """A torchmetrics collection's values as ``{f"{split}/{name}": float}``, then reset (summed across ranks)."""
    out = {f"{split}/{k}": float(v) for k, v in metrics.compute().items()}
    metrics.reset()
    return out


def batch_size_of(batch: Any) -> int:
    """The number of samples in a batch (the first tensor's first dimension)."""
    for t in _tensors(batch):
        return int(t.shape[0])
    return 1


def _tensors(obj: Any) -> Iterator[Tensor]:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def to_device(obj: Any, device: torch.device, memory_format: torch.memory_format | None = None) -> Any:
    """Move every tensor in a (nested) batch to ``device``; 4-D float tensors may take ``memory_format``."""
    if isinstance(obj, Tensor):
        if obj.device != device:
            obj = obj.to(device, non_blocking=True)
        if memory_format is not None and obj.dim() == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=memory_format)
        return obj
    if isinstance(obj, tuple):
        return tuple(to_device(o, device, memory_format) for o in obj)
    if isinstance(obj, list):
        return [to_device(o, device, memory_format) for o in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device, memory_format) for k, v in obj.items()}
    if hasattr(obj, "to"):
        return obj.to(device)
    return obj
