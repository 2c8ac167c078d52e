r"""Link prediction on one graph: score node pairs, edges against sampled non-edges.

A batch is a :class:`~archzoo.data.splits.LinkSplit` pass: a PyG ``Data`` with the node
features, the message-passing (training) edges, and the split's positive pairs
``pos_edge_label_index`` :math:`(2, P)` and negative pairs ``neg_edge_label_index``
:math:`(2, Q)`. The model maps the graph to node latents :math:`Z` (``forward``), scores a
pair by a logit (``score(z, pairs)``, :math:`z_i^\top z_j` for the graph autoencoders) and
says its own training objective (``loss(z, pos, neg)``: the VGAE's evidence lower bound,
:mod:`archzoo.models.vgae`).

Metrics, over the positive and negative pairs of the split (positives labelled 1):

* ``auc``: the area under the ROC curve, the probability that a random edge scores above a
  random non-edge (ties count a half);
* ``ap``: average precision, :math:`\sum_k (R_k - R_{k-1}) P_k` over the thresholds
  (scikit-learn's ``roc_auc_score`` and ``average_precision_score``, as Kipf & Welling report);
* ``loss``: the model's objective on the split's fixed pairs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import Task
from archzoo.utils import unwrap


def link_metrics(pos_scores: Tensor, neg_scores: Tensor) -> dict[str, float]:
    """ROC-AUC and average precision of scores for positive pairs :math:`(P,)` against negative ones :math:`(Q,)`."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if pos_scores.numel() == 0 or neg_scores.numel() == 0:
        raise UserError("ROC-AUC and AP need at least one positive and one negative pair.")
    y = torch.cat([torch.ones(pos_scores.numel()), torch.zeros(neg_scores.numel())]).numpy()
    s = torch.cat([pos_scores.flatten(), neg_scores.flatten()]).detach().float().cpu().numpy()
    return {"auc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s))}


class LinkPrediction(Task):
    """Train a node-pair scorer on a graph's training edges; ROC-AUC and AP on held-out edges and non-edges.

    Metrics: ``loss`` (the model's objective), ``auc``, ``ap``; the best checkpoint is the one of
    the highest validation AUC.
    """

    export_refusal = (
        "it scores node pairs chosen per split through an encoder and a pair decoder, not one forward pass over tensors"
    )

    monitor = "val/auc"
    mode = "max"

    def __init__(self) -> None:
        self.scores: dict[str, list[tuple[Tensor, Tensor, Tensor, int]]] = {}

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        m = unwrap(model)
        if not (callable(getattr(m, "score", None)) and callable(getattr(m, "loss", None))):
            raise UserError(
                f"Link prediction needs a model that scores node pairs (vgae, gae); {type(m).__name__} does not."
            )

    def count(self, batch: Any) -> int:
        """The labelled pairs of the batch: positives and negatives (shapes only: no device sync)."""
        return int(batch.pos_edge_label_index.size(1) + batch.neg_edge_label_index.size(1))

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        z = model(batch)  # (N, d): through the (possibly DDP-wrapped) module
        return unwrap(model).loss(z, batch.pos_edge_label_index, batch.neg_edge_label_index, batch.edge_index)

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        m = unwrap(model)
        z = model(batch)  # (N, d): the posterior means in eval mode
        pos, neg = batch.pos_edge_label_index, batch.neg_edge_label_index
        loss, _ = m.loss(z, pos, neg, batch.edge_index)
        n = self.count(batch)
        self.scores.setdefault(split, []).append((m.score(z, pos).float(), m.score(z, neg).float(), loss.float(), n))

    def compute(self, split: str) -> dict[str, float]:
        seen = self.scores.pop(split, [])
        if not seen:
            return {}
        pos = torch.cat([p for p, _, _, _ in seen])
        neg = torch.cat([q for _, q, _, _ in seen])
        total = sum(n for *_, n in seen)
        loss = float(sum(float(l_) * n for _, _, l_, n in seen) / max(total, 1))
        return {f"{split}/{k}": v for k, v in {"loss": loss, **link_metrics(pos, neg)}.items()}


@register_task("link_prediction")
def link_prediction() -> LinkPrediction:
    return LinkPrediction()
