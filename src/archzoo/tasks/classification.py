"""Classification: cross-entropy (with optional label smoothing), NLL or multi-class hinge; accuracy and macro-F1."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.outputs import AuxLogits
from archzoo.registry import register_task
from archzoo.tasks.base import ExportInput, Option, Task, collected, sequence_cap
from archzoo.utils import sum_across_ranks

CLASSIFICATION_LOSSES = ("ce", "nll", "hinge")
TTA_MODES = ("none", "flip")
AUX_WEIGHT = 0.3  # Szegedy et al. 2015, section 5: each auxiliary loss is added with weight 0.3


def unpack(batch: Any) -> tuple[Any, Tensor]:
    """What the model takes and the labels: ``(x, y)`` for a tuple; the whole batch and ``batch.y`` otherwise.

    A :class:`~archzoo.data.splits.PaddedBatch` (sequences and their lengths) or a PyG ``Batch``
    (graphs) is handed to the model whole, since it needs more than one tensor of it.
    """
    y = getattr(batch, "y", None)
    if isinstance(y, Tensor):
        return batch, y
    return batch[0], batch[1]


class Classification(Task):
    r"""Multi-class classification of ``(x, y)`` tuples, padded sequences or graph batches.

    A batch is a tuple ``(x, y)`` (the model takes ``x``), or an object with labels ``y``,
    a :class:`~archzoo.data.splits.PaddedBatch` or a PyG ``Batch`` (the model takes the batch,
    and predicts one class per sequence or per graph). It counts its examples.

    Losses, on the logits :math:`z` of one example with label :math:`y` (``loss``):

    * ``ce`` (default): :math:`-\sum_c q_c \log p_c`, :math:`p = \mathrm{softmax}(z)`, with
      :math:`q = (1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon / C` (label smoothing :math:`\varepsilon`,
      Szegedy et al. 2016);
    * ``nll``: :math:`-\log p_y` as ``F.nll_loss`` of ``F.log_softmax(z)``, the two-step form of the
      same objective (pytorch/examples' MNIST), for comparison with ``ce``;
    * ``hinge``: the multi-class margin loss of Weston & Watkins (1999), ``F.multi_margin_loss``,
      :math:`\frac1C \sum_{c \ne y} \max(0, m - z_y + z_c)` with margin :math:`m`.

    Args:
        label_smoothing: :math:`\varepsilon` (default 0; ``ce`` only).
        top_k: also report top-k accuracy when k > 1 and k < classes (default 5).
        loss: ce, nll or hinge (default ce); ``val/loss`` and ``test/loss`` use the same loss.
        margin: :math:`m` of ``hinge`` (default 1).
        aux_weight: the weight of each auxiliary head's loss for a model that returns
            :class:`~archzoo.layers.outputs.AuxLogits` in training (GoogLeNet built with
            ``aux_logits=True``): :math:`L = L_{main} + w \sum_a L_a` (default 0.3, the paper's);
            refused for a model without auxiliary heads. Evaluation uses the main head alone.
        tta: ``flip`` also evaluates every image mirrored left-right and averages the two
            softmax outputs; its metrics are reported beside the plain ones as
            ``{split}/tta_acc`` etc. (default ``none``). Refused for image datasets where a mirror
            changes the class (digits, MNIST) and for inputs that are not images.

    Metrics: ``loss``, ``acc`` (micro), ``f1`` (macro) and ``top{k}``, and with ``tta=flip`` the same
    with a ``tta_`` prefix.
    """

    monitor = "val/acc"
    mode = "max"

    def __init__(
        self,
        label_smoothing: float = 0.0,
        top_k: int = 5,
        loss: str = "ce",
        margin: float = 1.0,
        aux_weight: float | None = None,
        tta: str = "none",
    ) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise UserError(f"task.args.label_smoothing must be in [0, 1), got {label_smoothing}.")
        if loss not in CLASSIFICATION_LOSSES:
            raise UserError(f"task.args.loss must be one of {', '.join(CLASSIFICATION_LOSSES)}, got '{loss}'.")
        if label_smoothing and loss != "ce":
            raise UserError(f"task.args.label_smoothing applies to loss=ce only, not loss={loss}.")
        if margin != 1.0 and loss != "hinge":
            raise UserError(f"task.args.margin applies to loss=hinge only, not loss={loss}.")
        if margin <= 0:
            raise UserError(f"task.args.margin must be positive, got {margin}.")
        if aux_weight is not None and aux_weight < 0:
            raise UserError(f"task.args.aux_weight must be 0 or more, got {aux_weight}.")
        if tta not in TTA_MODES:
            raise UserError(f"task.args.tta must be one of {', '.join(TTA_MODES)}, got '{tta}'.")
        self.aux_weight_arg = aux_weight
        self.aux_weight = AUX_WEIGHT if aux_weight is None else float(aux_weight)
        self.tta = tta
        self.label_smoothing = label_smoothing
        self.loss_name = loss
        self.margin = margin
        self.top_k = top_k
        self.metrics: dict[str, Any] = {}

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        if self.aux_weight_arg is not None and not getattr(model, "aux_logits", False):
            raise UserError(
                "task.args.aux_weight weights auxiliary heads, and this model has none "
                "(GoogLeNet has them with model.args.aux_logits=true)."
            )
        self.set_tta(self.tta, info)
        c = int(info["num_classes"])
        self.num_classes = c
        self.classes = info.get("classes")

        import torchmetrics  # imported here: it takes seconds, and listing or summaries need none of it

        def collection() -> torchmetrics.MetricCollection:
            m: dict[str, Any] = {
                "acc": torchmetrics.classification.MulticlassAccuracy(c, average="micro"),
                "f1": torchmetrics.classification.MulticlassF1Score(c, average="macro"),
                "loss": torchmetrics.MeanMetric(),
            }
            if 1 < self.top_k < c:
                m[f"top{self.top_k}"] = torchmetrics.classification.MulticlassAccuracy(
                    c, top_k=self.top_k, average="micro"
                )
            return torchmetrics.MetricCollection(m).to(device)

        self.metrics = {s: collection() for s in ("train", "val", "test")}
        # Counts of (true class, predicted class) per split, summed on the device; compute() moves them
        # to ``last_confusion`` (the run report draws the test split's).
        self.confusion_counts: dict[str, Tensor] = {}
        self.last_confusion: dict[str, Tensor] = {}
        self.tta_metrics = {s: collection() for s in ("train", "val", "test")}

    def set_tta(self, tta: str, info: dict[str, Any]) -> None:
        """Switch flip test-time augmentation on (``"flip"``) or off (``"none"``) for ``info``'s data."""
        if tta not in TTA_MODES:
            raise UserError(f"The test-time augmentation must be one of {', '.join(TTA_MODES)}, got '{tta}'.")
        if tta == "flip":
            name = info.get("name", "this dataset")
            if info.get("kind") != "image":
                raise UserError(f"Flip test-time augmentation mirrors images, and {name} does not hold images.")
            if info.get("flip_changes_class"):
                raise UserError(
                    f"Flip test-time augmentation is refused for {name}: a mirrored image there can be "
                    "another class (a mirrored digit is no digit)."
                )
        self.tta = tta

    def count(self, batch: Any) -> int:
        """The number of examples: samples of a tuple, sequences of a padded batch, graphs of a PyG batch."""
        if isinstance(getattr(batch, "y", None), Tensor):
            return int(getattr(batch, "num_graphs", batch.y.shape[0]))
        return super().count(batch)

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = unpack(batch)
        out = model(x)
        logs: dict[str, Tensor] = {}
        if isinstance(out, AuxLogits):
            logits = out.logits
            main = self.objective(logits, y)
            aux = sum((self.objective(a, y) for a in out.aux), torch.zeros((), device=main.device))
            loss = main + self.aux_weight * aux
            logs["main_loss"] = main.detach()
            logs["aux_loss"] = aux.detach()
        else:
            logits = out
            loss = self.objective(logits, y)
        logs["acc"] = (logits.detach().argmax(1) == y).float().mean()
        return loss, logs

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        x, y = unpack(batch)
        logits = model(x).float()
        self.update_metrics(split, logits, y)
        if self.tta == "flip" and split in self.tta_metrics:
            # The mean of the two softmax outputs, as log-probabilities (so loss and accuracy read it as logits).
            mirrored = model(x.flip(-1)).float()
            mean = (logits.softmax(-1) + mirrored.softmax(-1)) / 2
            self.update_metrics(split, mean.clamp_min(1e-12).log(), y, self.tta_metrics)

    def objective(self, logits: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        """The configured loss of logits :math:`(B, C)` and labels :math:`(B,)`."""
        if self.loss_name == "nll":
            return F.nll_loss(F.log_softmax(logits, dim=-1), y, reduction=reduction)
        if self.loss_name == "hinge":
            return F.multi_margin_loss(logits, y, margin=self.margin, reduction=reduction)
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing, reduction=reduction)

    def update_metrics(self, split: str, logits: Tensor, y: Tensor, metrics: dict[str, Any] | None = None) -> None:
        """Add a batch's logits :math:`(B, C)` and labels :math:`(B,)` to the metrics of ``split``
        (in ``metrics``, by default the plain ones)."""
        # Validation reports the unsmoothed loss, as before label smoothing was an option.
        if self.loss_name == "ce":
            loss = F.cross_entropy(logits, y, reduction="sum")
        else:
            loss = self.objective(logits, y, reduction="sum")
        m = (self.metrics if metrics is None else metrics)[split]
        if metrics is None and logits.numel():
            c = self.num_classes
            pairs = torch.bincount(y.long() * c + logits.argmax(-1), minlength=c * c)[: c * c]
            prev = self.confusion_counts.get(split)
            self.confusion_counts[split] = pairs if prev is None else prev + pairs
        for name, metric in m.items():
            if name == "loss":
                metric.update(loss / max(y.numel(), 1), weight=y.numel())
            else:
                metric.update(logits, y)

    def compute(self, split: str) -> dict[str, float]:
        counts = self.confusion_counts.pop(split, None)
        if counts is not None:
            self.last_confusion[split] = sum_across_ranks(counts).view(self.num_classes, self.num_classes).cpu()
        out = collected(self.metrics[split], split)
        if self.tta == "flip" and split in self.tta_metrics:
            tta = collected(self.tta_metrics[split], split)
            out.update({k.replace("/", "/tta_", 1): v for k, v in tta.items()})
        return out

    # ----------------------------------------------------------------- archzoo export

    export_refusal = None

    def export_inputs(
        self, model: nn.Module, batch: Any, size: int | None = None, vary: bool = False
    ) -> list[ExportInput]:
        """A tuple batch's ``x``; a padded batch's ``x`` :math:`(B, L)` and ``lengths`` :math:`(B,)`,
        cut to its first ``size`` sequences and to the longest of those (``vary``: to three quarters of
        that). Graph mini-batches are refused."""
        from archzoo.data.splits import PaddedBatch

        if isinstance(batch, PaddedBatch):
            lengths = batch.lengths[:size]
            width = int(lengths.max())
            if vary and width > 2:  # another length too: the sequences cut to three quarters (still valid inputs)
                width = max(2, width * 3 // 4)
                lengths = lengths.clamp(max=width)
            x = batch.x[:size, :width]  # (B, L): the longest kept sequence sets L
            cap = sequence_cap(model)
            return [
                ExportInput("x", x, {0: "batch", 1: "seq"}, {"seq": cap} if cap else None),
                ExportInput("lengths", lengths, {0: "batch"}),
            ]
        if isinstance(getattr(batch, "y", None), Tensor):
            raise UserError(
                f"{type(unwrap_model(model)).__name__} reads PyG mini-batches of graphs, whose graph count "
                "comes from the data (global pooling over a batch vector), and archzoo export traces tensors of fixed meaning only."
            )
        return super().export_inputs(model, batch, size, vary)

    def export_forward(self, model: nn.Module, *inputs: Tensor) -> Tensor:
        """The logits; padded sequences go to the model's ``forward_padded`` where it has one (no packing)."""
        if len(inputs) == 2:
            from archzoo.data.splits import PaddedBatch

            padded = getattr(model, "forward_padded", None)
            return padded(*inputs) if padded is not None else model(PaddedBatch(*inputs))
        return super().export_forward(model, *inputs)

    def export_reference(self, model: nn.Module, *inputs: Tensor) -> Tensor:
        """The model's own forward: a padded batch as a :class:`~archzoo.data.splits.PaddedBatch` (packed)."""
        if len(inputs) == 2:
            from archzoo.data.splits import PaddedBatch

            return model(PaddedBatch(*inputs))
        return super().export_reference(model, *inputs)

    # ----------------------------------------------------------------- archzoo predict

    predict_options = {"top": Option(int, 1, "how many classes to show per input, most probable first")}

    def read_inputs(self, inputs: list[str], info: dict[str, Any]) -> Any:
        """Image files, read and normalised as the run's images were (``kind: image`` runs); or, for a
        run whose data has a tokenizer (``info["tokenizer"]``), texts encoded by it into a ``PaddedBatch``."""
        tokenizer = info.get("tokenizer")
        if tokenizer is not None and hasattr(tokenizer, "encode"):
            return _padded_texts(inputs, tokenizer, int(info.get("pad_id", 0)))
        if info.get("kind") != "image":
            raise UserError("This run does not classify images; predict takes image files only for image runs.")
        from archzoo.data.imagefolder import load_image

        xs = [
            load_image(p, info["image_size"], info.get("mean", 0.0), info.get("std", 1.0), info["in_channels"])
            for p in inputs
        ]
        return (torch.cat(xs),)

    def predict(self, model: nn.Module, batch: Any) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return model(x).float().softmax(-1)

    def describe(self, outputs: Any, inputs: list[str], info: dict[str, Any], **options: Any) -> list[str]:
        """``input<TAB>class<TAB>probability`` for the ``top`` most probable classes of each input."""
        top = int(options.get("top", 1))
        if top < 1:
            raise UserError(f"--top must be at least 1, got {top}.")
        classes = info.get("classes") or [str(i) for i in range(outputs.shape[-1])]
        lines = []
        for path, probs in zip(inputs, outputs, strict=True):
            best = probs.topk(min(top, probs.numel()))
            for p, i in zip(best.values.tolist(), best.indices.tolist(), strict=True):
                lines.append(f"{path}\t{classes[i]}\t{p:.4f}")
        return lines


def unwrap_model(model: nn.Module) -> nn.Module:
    from archzoo.utils import unwrap

    return unwrap(model)


def _padded_texts(inputs: list[str], tokenizer: Any, pad_id: int) -> Any:
    """Each text as the tokenizer's ids, padded with ``pad_id`` into one :class:`~archzoo.data.splits.PaddedBatch`."""
    from archzoo.data.splits import PaddedBatch

    ids = [tokenizer.encode(text) for text in inputs]
    for text, seq in zip(inputs, ids, strict=True):
        if not seq:
            raise UserError(f"The input {text!r} holds no tokens of this run's vocabulary.")
    lengths = torch.tensor([len(s) for s in ids], dtype=torch.int64)
    x = torch.full((len(ids), int(lengths.max())), pad_id, dtype=torch.int64)  # (B, L)
    for i, seq in enumerate(ids):
        x[i, : len(seq)] = torch.tensor(seq, dtype=torch.int64)
    return PaddedBatch(x, lengths)


@register_task("classification")
def classification(
    label_smoothing: float = 0.0,
    top_k: int = 5,
    loss: str = "ce",
    margin: float = 1.0,
    aux_weight: float | None = None,
    tta: str = "none",
) -> Classification:
    return Classification(
        label_smoothing=label_smoothing, top_k=top_k, loss=loss, margin=margin, aux_weight=aux_weight, tta=tta
    )
