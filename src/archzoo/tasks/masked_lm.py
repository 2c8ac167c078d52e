r"""Masked language modeling (BERT's pretraining objective, Devlin et al. 2019, https://arxiv.org/abs/1810.04805).

Of the real tokens of a batch (neither padding nor a special token such as ``[CLS]``,
``[SEP]``), each is chosen with probability ``p = 0.15``; a chosen token is replaced by
``[MASK]`` with probability 0.8, by a uniformly drawn ordinary token with probability 0.1,
and kept with probability 0.1. The model sees the corrupted batch and is scored on the
chosen positions :math:`M` only:

.. math::
    \mathcal{L} = -\frac{1}{|M|} \sum_{(b,t) \in M} \log p_\theta(x_{b,t} \mid \tilde{x}_b),
    \qquad \mathrm{ppl} = e^{\mathcal{L}}

Training masks are drawn on the batch's device from the global torch generator (which a
checkpoint saves, so a resumed run draws the same masks); evaluation masks come from a
generator of their own, seeded afresh for each pass, so every evaluation of a split scores
the same positions and leaves the training stream untouched. A batch is a
:class:`~archzoo.data.splits.PaddedBatch` of token ids; the model maps it to logits
:math:`(B, L, V)`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import Task

#: The seed of the evaluation masks.
EVAL_SEED = 1234


def mask_tokens(
    x: Tensor,
    real: Tensor,
    mask_id: int,
    ordinary: Tensor,
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's 80/10/10 corruption of ``x``: (corrupted ids, labels with -100 off the chosen positions).

    Args:
        x: token ids :math:`(B, L)`.
        real: :math:`(B, L)` bool, True where a token may be chosen (not padding, not special).
        mask_id: the ``[MASK]`` id.
        ordinary: the ids a random replacement is drawn from, :math:`(K,)`, on ``x``'s device.
        p: the chance that a real token is chosen (default 0.15).
        generator: where the random numbers come from (default torch's global one).
    """
    u = torch.rand(x.shape, device=x.device, generator=generator)  # (B, L): chosen when below p
    v = torch.rand(x.shape, device=x.device, generator=generator)  # (B, L): what a chosen token becomes
    pick = torch.randint(0, ordinary.numel(), x.shape, device=x.device, generator=generator)  # (B, L)
    chosen = real & (u < p)
    out = torch.where(chosen & (v < 0.8), torch.full_like(x, mask_id), x)
    out = torch.where(chosen & (v >= 0.8) & (v < 0.9), ordinary[pick], out)  # 10% random; the last 10% kept
    labels = torch.where(chosen, x, torch.full_like(x, -100))
    return out, labels


class MaskedLM(Task):
    """Masked-token prediction; metrics ``loss`` (per chosen token), ``acc`` (masked-token accuracy) and ``ppl``.

    Args:
        mask_prob: the chance that a real token is chosen (default 0.15).
    """

    export_refusal = (
        "it is a pre-training objective over randomly masked tokens; export a classifier fine-tuned from it instead"
    )

    monitor = "val/loss"
    mode = "min"

    def __init__(self, mask_prob: float = 0.15) -> None:
        if not 0.0 < mask_prob < 1.0:
            raise UserError(f"task.args.mask_prob must be in (0, 1), got {mask_prob}.")
        self.mask_prob = mask_prob

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        if "mask_id" not in info:
            raise UserError(
                "The masked_lm task needs data with a [MASK] token (a subword tokenizer such as wordpiece)."
            )
        self.mask_id = int(info["mask_id"])
        self.pad_id = int(info.get("pad_id", 0))
        special = torch.tensor(sorted({*info.get("special_ids", []), self.pad_id, self.mask_id}), dtype=torch.long)
        ids = torch.arange(int(info["vocab_size"]))
        self.special = special.to(device)
        self.ordinary = ids[~torch.isin(ids, special)].to(device)  # (K,): what a random replacement can be
        self.device = device
        self.sums: dict[str, Tensor] = {}
        self.generators: dict[str, torch.Generator] = {}

    def corrupt(self, batch: Any, generator: torch.Generator | None = None) -> tuple[Any, Tensor]:
        """The batch with its tokens masked, and the labels (the original ids at the chosen positions, else -100)."""
        x = batch.x
        real = batch.mask.to(x.device) & ~torch.isin(x, self.special)  # (B, L)
        xm, labels = mask_tokens(x, real, self.mask_id, self.ordinary, self.mask_prob, generator)
        return replace(batch, x=xm), labels

    def _scores(self, model: nn.Module, batch: Any, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """(summed loss, correct, chosen count) over the chosen positions of one batch."""
        masked, labels = self.corrupt(batch, generator)
        logits = model(masked)  # (B, L, V)
        flat = logits.flatten(0, 1).float()  # (B L, V)
        y = labels.flatten()  # (B L,)
        loss = F.cross_entropy(flat, y, ignore_index=-100, reduction="sum")
        chosen = y != -100
        correct = ((flat.argmax(-1) == y) & chosen).sum()
        return loss, correct, chosen.sum()

    def count(self, batch: Any) -> Tensor:
        return batch.lengths.sum()

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        total, correct, n = self._scores(model, batch, None)
        n = n.clamp(min=1)
        return total / n, {"acc": (correct / n).detach()}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        if split not in self.generators:  # a fresh pass over the split: the same masks every time
            g = torch.Generator(device=batch.x.device)
            g.manual_seed(EVAL_SEED)
            self.generators[split] = g
            self.sums[split] = torch.zeros(3, device=batch.x.device, dtype=torch.float64)
        total, correct, n = self._scores(model, batch, self.generators[split])
        self.sums[split] += torch.stack([total.double(), correct.double(), n.double()])

    def compute(self, split: str) -> dict[str, float]:
        s = self.sums.pop(split, None)
        self.generators.pop(split, None)
        if s is None:
            return {}
        total, correct, n = s.tolist()
        loss = total / max(n, 1.0)
        return {f"{split}/loss": loss, f"{split}/acc": correct / max(n, 1.0), f"{split}/ppl": math.exp(min(loss, 50.0))}


@register_task("masked_lm")
def masked_lm(mask_prob: float = 0.15) -> MaskedLM:
    return MaskedLM(mask_prob)
