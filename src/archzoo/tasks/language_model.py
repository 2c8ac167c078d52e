r"""Language modeling: predict every next token; per-token loss, perplexity and bits per token.

A batch is ``(x, y)``, two LongTensors :math:`(B, T)` with ``y`` the stream shifted
by one (:class:`~archzoo.data.splits.TokenStream`). The model maps ``(x, state)``
to ``(logits, new_state)``, :math:`(B, T, V)` logits.

.. math::
    \mathcal{L} = -\frac{1}{N} \sum_{b, t} \log p_\theta(y_{b,t} \mid x_{b, \le t}, h_0), \qquad
    \mathrm{ppl} = e^{\mathcal{L}}, \qquad \mathrm{bpc} = \mathcal{L} / \ln 2

over the :math:`N = B T` target tokens; ``bpc`` is bits per token (per character
for a character corpus).

**Truncated back-propagation through time.** When the data's rows are
contiguous (``info["contiguous"]``, a :class:`TokenStream` in ``"streams"`` mode:
row :math:`r` of batch :math:`i+1` continues row :math:`r` of batch :math:`i`),
the recurrent state after one batch is the initial state :math:`h_0` of the
next, detached so that gradients stop at the boundary (Williams & Peng 1990;
Zaremba et al. 2014, https://arxiv.org/abs/1409.2329). The training state is
reset at the start of each epoch and saved in every checkpoint, so a run resumed
mid-epoch continues bit for bit; evaluation carries its own state through one
pass of a split and drops it in :meth:`LanguageModeling.compute`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import ExportInput, Option, StepContext, Task, sequence_cap
from archzoo.utils import unwrap

#: A recurrent state: one tensor (GRU, RNN), a tuple of them (LSTM's ``(h, c)``), or None (a fresh start).
State = Tensor | tuple[Tensor, ...] | None

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- state helpers


def _as_tuple(state: State) -> tuple[Tensor, ...]:
    if state is None:
        return ()
    return (state,) if isinstance(state, Tensor) else tuple(state)


def detach_state(state: State) -> State:
    """Cut the graph at a batch boundary: ``h.detach()`` for each tensor of the state."""
    if state is None or isinstance(state, Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)


def _fits(state: State, x: Tensor) -> bool:
    """Whether ``state`` (each tensor ``(layers, B, H)``) belongs to a batch of ``x.shape[0]`` rows."""
    t = _as_tuple(state)
    return bool(t) and all(s.dim() == 3 and s.shape[1] == x.shape[0] for s in t)


def _on(state: State, device: torch.device) -> State:
    if state is None or all(s.device == device for s in _as_tuple(state)):
        return state
    if isinstance(state, Tensor):
        return state.to(device)
    return tuple(s.to(device) for s in state)


# ----------------------------------------------------------------------------- text <-> ids


def encode(text: str, itos: list[str]) -> list[int]:
    """Token ids of ``text`` under a character vocabulary; characters outside it are a UserError naming them."""
    stoi = {s: i for i, s in enumerate(itos)}
    unknown = sorted({c for c in text if c not in stoi})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:20]) + (", ..." if len(unknown) > 20 else "")
        raise UserError(f"The text has {len(unknown)} character(s) outside the dataset's vocabulary: {shown}.")
    return [stoi[c] for c in text]


def decode(ids: list[int], itos: list[str]) -> str:
    return "".join(itos[i] for i in ids)


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    r"""Mask all but the ``top_k`` most likely tokens and the nucleus of mass ``top_p`` with :math:`-\infty`.

    Nucleus sampling (Holtzman et al. 2020, https://arxiv.org/abs/1904.09751) keeps the
    smallest set of most likely tokens whose probabilities sum to at least ``top_p``.

    Shapes:
        ``logits`` :math:`(B, V)`, returned the same.
    """
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens more likely than it already hold top_p; the first always stays.
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


# ----------------------------------------------------------------------------- the task


class LanguageModeling(Task):
    r"""Next-token prediction with cross-entropy over every position.

    Args:
        carry_state: carry the recurrent state from batch to batch (truncated BPTT) when the
            data's rows are contiguous (default True).

    Metrics: ``loss`` (mean NLL per token, nats), ``ppl`` (:math:`e^{\text{loss}}`) and ``bpc``
    (loss / ln 2, bits per token), each from the summed NLL over the summed token count.

    ``archzoo predict RUN TEXT...`` reports, for each text, the mean NLL per predicted
    token of its characters 2..n given the ones before (and its perplexity);
    ``archzoo sample RUN`` continues a prompt.
    """

    monitor = "val/loss"
    mode = "min"

    sample_options = {
        "prompt": Option(str, "", "text to continue (characters of the dataset's vocabulary)"),
        "tokens": Option(int, 200, "number of tokens to generate"),
        "temperature": Option(float, 1.0, "softmax temperature; 0 picks the most likely token"),
        "top_k": Option(int, 0, "sample among the k most likely tokens only (0: all)"),
        "top_p": Option(float, 1.0, "sample from the smallest set of tokens holding this probability (nucleus)"),
        "seed": Option(int, 0, "random seed of the draws"),
    }

    def __init__(self, carry_state: bool = True) -> None:
        self.carry_state = carry_state
        self.carry = carry_state
        self.device = torch.device("cpu")
        self.train_state: State = None
        self.eval_states: dict[str, State] = {}
        self.metrics: dict[str, Any] = {}

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        # Carrying state over rows that do not continue each other (random blocks) would feed one
        # text's state into another's start: only contiguous streams carry it.
        self.carry = self.carry_state and bool(info.get("contiguous", True))
        self.device = device
        self.train_state = _on(self.train_state, device)

        import torchmetrics  # imported here: it takes seconds, and listing or summaries need none of it

        def sums() -> torchmetrics.MetricCollection:
            # nan_strategy="disable": the NaN check would read the value on the host (a sync per batch).
            m = {
                "nll": torchmetrics.SumMetric(nan_strategy="disable"),
                "tokens": torchmetrics.SumMetric(nan_strategy="disable"),
            }
            c = torchmetrics.MetricCollection(m, compute_groups=False).to(device)
            return c if device.type == "mps" else c.set_dtype(torch.float64)  # exact token counts past 2**24

        self.metrics = {s: sums() for s in ("train", "val", "test")}

    # ------------------------------------------------------------------- training

    def count(self, batch: Any) -> int:
        """The number of target tokens (from the shape: no host sync)."""
        return batch[1].numel()

    def start_epoch(self, epoch: int) -> None:
        self.train_state = None

    def _nll(self, model: nn.Module, x: Tensor, y: Tensor, state: State, reduction: str) -> tuple[Tensor, State]:
        if getattr(unwrap(model), "scores_targets", False):
            # The model scores the targets itself (an adaptive softmax): per-token NLL (B, T).
            nll, new_state = model(x, state, targets=y)
            return (nll.sum() if reduction == "sum" else nll.mean()), new_state
        logits, new_state = model(x, state)  # (B, T, V)
        v = logits.shape[-1]
        nll = F.cross_entropy(logits.float().reshape(-1, v), y.reshape(-1), reduction=reduction)  # (B*T, V) vs (B*T,)
        return nll, new_state

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Mean NLL per token from a fresh state (the stateless form, for tools that probe one batch)."""
        x, y = batch[0], batch[1]
        loss, _ = self._nll(model, x, y, None, "mean")
        return loss, {}

    def training_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        state = self.train_state if self.carry and _fits(self.train_state, x) else None
        state = _on(state, x.device)
        with ctx.autocast():
            loss, new_state = self._nll(model, x, y, state, "mean")
        ctx.backward(loss)
        ctx.step()
        # Truncated BPTT: the next batch starts from this state, without a path back through it. A step
        # skipped for a non-finite loss (train.skip_nonfinite) may leave a NaN state: the next batch starts fresh.
        skipped = bool(getattr(ctx, "skipped", ()))
        self.train_state = detach_state(new_state) if self.carry and not skipped else None
        return {"loss": loss.detach()}

    def extra_state(self) -> dict[str, Any]:
        """The carried training state as a list of tensors (empty when there is none)."""
        return {"train_state": [s.detach().clone() for s in _as_tuple(self.train_state)]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        ts = list(state.get("train_state", []))
        if not ts:
            self.train_state = None
        elif len(ts) == 1:
            self.train_state = ts[0].to(self.device)
        else:
            self.train_state = tuple(t.to(self.device) for t in ts)

    # ------------------------------------------------------------------- evaluation

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        x, y = batch[0], batch[1]
        prev = self.eval_states.get(split)
        state = prev if self.carry and _fits(prev, x) else None
        nll, new_state = self._nll(model, x, y, state, "sum")
        if self.carry:
            self.eval_states[split] = detach_state(new_state)
        m = self.metrics[split]
        m["nll"].update(nll.detach())
        m["tokens"].update(y.numel())

    def compute(self, split: str) -> dict[str, float]:
        m = self.metrics[split]
        self.eval_states.pop(split, None)
        with warnings.catch_warnings():
            # Every rank joins the sum, even one that saw no batch (it adds zeros).
            warnings.filterwarnings("ignore", message=r".*called before the ``update`` method")
            sums = m.compute()  # summed across ranks by torchmetrics under DDP
        m.reset()
        tokens = float(sums["tokens"])
        if tokens == 0:
            return {}
        loss = float(sums["nll"]) / tokens
        ppl = math.exp(loss) if loss < 700 else math.inf
        return {f"{split}/loss": loss, f"{split}/ppl": ppl, f"{split}/bpc": loss / LN2}

    # ------------------------------------------------------------------- archzoo export

    export_refusal = None

    def export_inputs(
        self, model: nn.Module, batch: Any, size: int | None = None, vary: bool = False
    ) -> list[ExportInput]:
        """Token ids :math:`(B, T)` from a fresh state (a carried state is not an input of the export);
        ``vary`` shortens the windows to three quarters. A GPT caps ``seq`` at its ``block_size``."""
        x = batch[0][:size]
        if vary:
            x = x[:, : max(2, x.shape[1] * 3 // 4)]
        block = sequence_cap(unwrap(model))
        return [ExportInput("x", x, {0: "batch", 1: "seq"}, {"seq": int(block)} if block else None)]

    def export_forward(self, model: nn.Module, *inputs: Tensor) -> Tensor:
        """The logits :math:`(B, T, V)` (log-probabilities with an adaptive head) from a fresh state."""
        logits, _ = model(inputs[0])
        return logits

    # ------------------------------------------------------------------- outputs for users

    def read_inputs(self, inputs: list[str], info: dict[str, Any]) -> list[Tensor]:
        """Each text as token ids ``(1, n)``; a text needs two tokens (one to read, one to predict)."""
        out = []
        for text in inputs:
            ids = _encode(text, info)
            if len(ids) < 2:
                raise UserError(f"Text {text!r} is too short to score; give at least two characters.")
            out.append(torch.tensor([ids]))
        return out

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Any) -> list[tuple[float, int]]:
        """The mean NLL per predicted token and the number of predicted tokens of each text."""
        out = []
        for ids in batch:
            nll, _ = self._nll(model, ids[:, :-1], ids[:, 1:], None, "sum")
            n = ids.shape[1] - 1
            out.append((float(nll) / n, n))
        return out

    def describe(self, outputs: Any, inputs: list[str], info: dict[str, Any], **options: Any) -> list[str]:
        """``text<TAB>loss=<nats per token><TAB>ppl=<perplexity><TAB>tokens=<n>``, one line per text."""
        lines = []
        for text, (loss, n) in zip(inputs, outputs, strict=True):
            shown = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            lines.append(f"{shown}\tloss={loss:.4f}\tppl={math.exp(min(loss, 700)):.3f}\ttokens={n}")
        return lines

    @torch.no_grad()
    def sample(self, run: Any, out_dir: Path, **options: Any) -> list[Path]:
        """Continue ``prompt`` by ``tokens`` draws, each one step of ``run.model`` from the carried state.

        A model with a ``generate`` method (a GPT) decodes itself with the same options and seed
        (its KV cache; a prompt longer than its context is cropped to the last ``block_size``
        tokens). Otherwise the prompt is read once; every further token costs one step of length 1. An empty prompt
        starts from a newline (or token 0 when the vocabulary has none), which is not written.
        """
        model, info = run.model, run.info
        o = {k: options.get(k, opt.default) for k, opt in self.sample_options.items()}
        prompt, n, temperature = str(o["prompt"]), int(o["tokens"]), float(o["temperature"])
        top_k, top_p = int(o["top_k"]), float(o["top_p"])
        if n < 0:
            raise UserError(f"--tokens must be non-negative, got {n}.")
        if temperature < 0:
            raise UserError(f"--temperature must be non-negative, got {temperature}.")
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"--top-p must be in (0, 1], got {top_p}.")
        if top_k < 0:
            raise UserError(f"--top-k must be non-negative (0 is off), got {top_k}.")
        itos = _itos(info)
        start = next((itos.index(s) for s in ("\n", "<eos>") if s in itos), 0)
        ids = _encode(prompt, info) if prompt else [start]
        net = unwrap(model)
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        gen = torch.Generator(device=device).manual_seed(int(o["seed"]))
        if callable(getattr(net, "generate", None)):
            # The model decodes itself (a GPT with its KV cache); the same draws, options and seed.
            prompt_ids = torch.tensor([ids], device=device)  # (1, P)
            out = net.generate(prompt_ids, n, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen)
            net.train(was_training)
            return self._write(out[0, prompt_ids.shape[1] :].tolist(), prompt, info, out_dir)
        logits, state = net(torch.tensor([ids], device=device))  # (1, P, V): the prompt, once
        drawn: list[Tensor] = []
        for i in range(n):
            last = logits[:, -1].float()  # (1, V)
            if temperature == 0:
                nxt = last.argmax(-1, keepdim=True)  # (1, 1)
            else:
                probs = filter_logits(last / temperature, top_k, top_p).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=gen)  # (1, 1)
            drawn.append(nxt)
            if i + 1 < n:
                logits, state = net(nxt, state)  # one step from the carried state
        net.train(was_training)
        return self._write(torch.cat(drawn, 1)[0].tolist() if drawn else [], prompt, info, out_dir)

    @staticmethod
    def _write(new: list[int], prompt: str, info: dict[str, Any], out_dir: Path) -> list[Path]:
        """``sample.txt``: the prompt and the decoded new tokens."""
        continuation = _decode(new, info)
        sep = getattr(info.get("tokenizer"), "separator", "")
        if sep and prompt and continuation and not prompt[-1].isspace() and not continuation[0].isspace():
            continuation = sep + continuation  # words: the prompt's last word and the first drawn one apart
        text = prompt + continuation
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "sample.txt"
        path.write_text(text, encoding="utf-8")
        return [path]


def _encode(text: str, info: dict[str, Any]) -> list[int]:
    """``text`` read by the run's tokenizer (``info["tokenizer"]``), else character by character over ``itos``."""
    tokenizer = info.get("tokenizer")
    if tokenizer is not None and hasattr(tokenizer, "encode"):
        return list(tokenizer.encode(text))
    return encode(text, _itos(info))


def _decode(ids: list[int], info: dict[str, Any]) -> str:
    tokenizer = info.get("tokenizer")
    if tokenizer is not None and hasattr(tokenizer, "decode"):
        return tokenizer.decode(ids)
    return decode(ids, _itos(info))


def _itos(info: dict[str, Any]) -> list[str]:
    itos = info.get("itos")
    if not itos:
        raise UserError("This run's dataset has no vocabulary (info['itos']) to read or write text with.")
    return list(itos)


@register_task("language_model")
def language_model(carry_state: bool = True) -> LanguageModeling:
    return LanguageModeling(carry_state=carry_state)
