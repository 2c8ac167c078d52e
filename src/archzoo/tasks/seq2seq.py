r"""Sequence to sequence: token cross-entropy under teacher forcing; exact match and BLEU of decoded outputs.

A batch is a :class:`~archzoo.data.splits.PaddedBatch` with sources ``x``
:math:`(B, L_x)`, ``lengths``, targets ``y`` :math:`(B, L_y)` ending in ``<eos>``
and ``y_lengths`` (:mod:`archzoo.data.seq2seq_tasks`). The model maps the batch
to teacher-forced logits :math:`(B, L_y, V)` and decodes with ``greedy`` or
``beam_search`` (:class:`~archzoo.models.seq2seq.Seq2Seq`).

.. math::
    \mathcal{L} = -\frac{1}{N} \sum_{b} \sum_{t \le |y_b|} \log p_\theta(y_{b,t} \mid y_{b,<t}, x_b)

over the :math:`N = \sum_b |y_b|` target tokens (``<eos>`` included, padding ignored);
a batch counts its :math:`N` target tokens.

Metrics: ``loss`` (per token) and ``acc`` (token accuracy), both teacher forced;
``exact``, the share of examples whose decoded output (greedy, or beam search
with ``beam > 1``) equals the target exactly, ``<eos>`` included; and with
``bleu`` the corpus BLEU (sacrebleu, Papineni et al. 2002) of the detokenised
decoded outputs against the targets. The monitored metric is ``val/exact``, or
``val/bleu`` with ``bleu``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import Picture, Task
from archzoo.utils import gather_across_ranks, sum_across_ranks, unwrap


def exact_matches(pred: Tensor, y: Tensor, y_lengths: Tensor, eos_id: int) -> Tensor:
    """Per example, whether the decoded ids ``pred`` :math:`(B, T)` equal the target :math:`(B, L_y)` up to its ``<eos>``.

    A prediction is right when its first ``y_lengths[b]`` tokens are the target's (which ends in
    ``<eos>``); what follows the ``<eos>`` does not count.
    """
    b, ly = y.shape
    t = pred.shape[1]
    if t < ly:
        pred = torch.cat([pred, pred.new_full((b, ly - t), -1)], 1)
    pred = pred[:, :ly]
    mask = torch.arange(ly, device=y.device) < y_lengths[:, None]  # (B, L_y)
    return ((pred == y) | ~mask).all(1)


class Seq2SeqTask(Task):
    """Train a sequence-to-sequence model on padded (source, target) batches (see the module docstring).

    Args:
        bleu: also report corpus BLEU of the decoded outputs, and monitor ``val/bleu`` (default False).
        beam: decode with beam search of this width in evaluation and predict; 1 is greedy (default 1).
        max_len: longest decoded output (default the data's longest target plus 10).
        length_penalty: beam search's :math:`\\alpha` (default 0.6).
    """

    export_refusal = (
        "it decodes its output token by token (greedy or beam search), a loop whose length depends on the "
        "tokens it draws, not one forward pass"
    )

    monitor = "val/exact"
    mode = "max"

    def __init__(
        self, bleu: bool = False, beam: int = 1, max_len: int | None = None, length_penalty: float = 0.6
    ) -> None:
        if beam < 1:
            raise UserError(f"task.args.beam must be at least 1, got {beam}.")
        self.bleu, self.beam, self.max_len, self.length_penalty = bleu, beam, max_len, length_penalty
        if bleu:
            self.monitor = "val/bleu"
        self.sums: dict[str, Tensor] = {}
        self.texts: dict[str, tuple[list[str], list[str]]] = {}
        self.info: dict[str, Any] = {}

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        for key in ("tgt_itos", "pad_id", "eos_id"):
            if key not in info:
                raise UserError(f"Task seq2seq needs a sequence-to-sequence dataset; this one has no '{key}'.")
        self.info = info
        self.pad_id, self.eos_id = int(info["pad_id"]), int(info["eos_id"])
        if self.max_len is None:
            self.max_len = int(info.get("max_tgt_len", 40)) + 10
        self.device = device
        if self.bleu:
            import sacrebleu  # noqa: F401 - fail at setup, not after the first epoch

    # ------------------------------------------------------------------ training

    def count(self, batch: Any) -> Tensor:
        """The target tokens of the batch, ``<eos>`` included."""
        return batch.y_lengths.sum()

    def _token_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=self.pad_id, reduction="sum")

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(batch)  # (B, L_y, V)
        y = batch.y
        mask = batch.y_mask
        n = mask.sum()
        loss = self._token_loss(logits, y) / n.clamp(min=1)
        acc = ((logits.detach().argmax(-1) == y) & mask).sum() / n.clamp(min=1)
        return loss, {"acc": acc}

    # ------------------------------------------------------------------ evaluation

    def decode(self, model: nn.Module, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Decoded ids :math:`(B, T)` and attention :math:`(B, T, L_x)`: greedy, or beam search with ``beam > 1``."""
        net = unwrap(model)
        max_len = int(self.max_len or 50)
        if self.beam > 1:
            return net.beam_search(src, src_lengths, self.beam, max_len, self.length_penalty)
        return net.greedy(src, src_lengths, max_len)

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        y, mask = batch.y, batch.y_mask
        logits = model(batch).float()
        pred, _ = self.decode(model, batch.x, batch.lengths)
        right = exact_matches(pred, y, batch.y_lengths, self.eos_id)
        s = self.sums.setdefault(split, torch.zeros(5, dtype=torch.float64, device=y.device))
        s += torch.stack([
            self._token_loss(logits, y).double(),
            ((logits.argmax(-1) == y) & mask).sum().double(),
            mask.sum().double(),
            right.sum().double(),
            torch.tensor(float(len(y)), dtype=torch.float64, device=y.device),
        ])  # fmt: skip
        if self.bleu:
            hyp, ref = self.texts.setdefault(split, ([], []))
            hyp.extend(self.detokenize(p) for p in pred.tolist())
            ref.extend(self.detokenize(t) for t in y.tolist())

    def compute(self, split: str) -> dict[str, float]:
        s = self.sums.pop(split, None)
        if s is None:
            s = torch.zeros(5, dtype=torch.float64, device=getattr(self, "device", "cpu"))
        loss, right, tokens, exact, n = sum_across_ranks(s).tolist()
        if n == 0:
            return {}
        out = {f"{split}/loss": loss / tokens, f"{split}/acc": right / tokens, f"{split}/exact": exact / n}
        if self.bleu:
            import sacrebleu

            hyp, ref = self.texts.pop(split, ([], []))
            parts = gather_across_ranks((hyp, ref))
            hyps = [h for p in parts for h in p[0]]
            refs = [r for p in parts for r in p[1]]
            out[f"{split}/bleu"] = float(sacrebleu.corpus_bleu(hyps, [refs]).score)
        return out

    # ------------------------------------------------------------------ text

    def detokenize(self, ids: list[int], info: dict[str, Any] | None = None) -> str:
        """The text of target ids up to ``<eos>`` (characters joined, or words joined by spaces)."""
        from archzoo.data.seq2seq_tasks import decode

        info = info or self.info
        return decode(ids, info["tgt_itos"], info.get("level", "char"))

    def read_inputs(self, inputs: list[str], info: dict[str, Any]) -> Any:
        """Each text as source ids, normalised and split as the run's data was; one padded batch."""
        from archzoo.data.seq2seq_tasks import encode, normalize
        from archzoo.data.splits import PaddedBatch

        itos = info.get("src_itos")
        if not itos:
            raise UserError("This run's dataset has no source vocabulary (info['src_itos']).")
        word = info.get("level") == "word"
        seqs = []
        for text in inputs:
            tokens = normalize(text).split() if word else list(text)
            if not tokens:
                raise UserError(f"Input {text!r} has no tokens to translate.")
            seqs.append(encode(tokens, itos))
        lengths = torch.tensor([len(s) for s in seqs])
        x = torch.full((len(seqs), int(lengths.max())), int(info.get("pad_id", 0)), dtype=torch.long)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = torch.tensor(s)
        return PaddedBatch(x, lengths)

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Any) -> tuple[Tensor, Tensor]:
        net = unwrap(model)
        was = net.training
        net.eval()
        try:
            return self.decode(net, batch.x, batch.lengths)
        finally:
            net.train(was)

    def describe(self, outputs: Any, inputs: list[str], info: dict[str, Any], **options: Any) -> list[str]:
        """``input<TAB>output``, one line per input."""
        ids, _ = outputs
        return [f"{text}\t{self.detokenize(row, info)}" for text, row in zip(inputs, ids.tolist(), strict=True)]

    # ------------------------------------------------------------------ pictures

    def attention(
        self, model: nn.Module, text: str, info: dict[str, Any] | None = None
    ) -> tuple[list[str], list[str], Tensor | None]:
        """The source tokens of ``text``, the decoded output tokens and the attention :math:`(T, L_x)` (None without).

        Greedy decoding; the rows after ``<eos>`` are dropped.
        """
        from archzoo.data.seq2seq_tasks import EOS

        info = info or self.info
        net = unwrap(model)
        batch = self.read_inputs([text], info)
        device = next(net.parameters()).device
        was = net.training
        net.eval()
        try:
            with torch.no_grad():
                ids, attn = net.greedy(batch.x.to(device), batch.lengths.to(device), int(self.max_len or 50))
        finally:
            net.train(was)
        src_itos, tgt_itos = info["src_itos"], info["tgt_itos"]
        src = [src_itos[i] for i in batch.x[0].tolist()]
        out = []
        for i in ids[0].tolist():
            out.append(tgt_itos[i])
            if tgt_itos[i] == EOS:
                break
        weights = attn[0, : len(out)].float().cpu() if getattr(net, "attention", None) is not None else None
        return src, out, weights

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> list[Picture] | None:
        """The attention of the data's fixed validation source (``info["probe"]``), as a grid image."""
        probe = self.info.get("probe")
        if run_dir is None or not probe or getattr(unwrap(model), "attention", None) is None:
            return None
        _, _, weights = self.attention(model, probe)
        if weights is None or weights.numel() == 0:
            return None
        shown = weights / weights.amax(1, keepdim=True).clamp(min=1e-12)  # each output row scaled to its peak
        return [Picture(Path(run_dir) / "attention.png", "grid", shown[None, None], nrow=1, title=probe)]


@register_task("seq2seq")
def seq2seq(bleu: bool = False, beam: int = 1, max_len: int | None = None, length_penalty: float = 0.6) -> Seq2SeqTask:
    return Seq2SeqTask(bleu=bleu, beam=beam, max_len=max_len, length_penalty=length_penalty)
