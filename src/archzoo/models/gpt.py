r"""Decoder-only Transformer language model (GPT), with KV-cached generation and GPT-2 weight loading.

GPT (Radford et al. 2018; GPT-2: Radford et al. 2019,
https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf)
is a stack of causal pre-norm Transformer blocks over token and position embeddings, read
out by a linear map tied to the token embedding (Press & Wolf 2017,
https://arxiv.org/abs/1608.05859):

.. math::
    h_0 = E[x] + P, \qquad
    h_\ell = \mathrm{Block}_\ell(h_{\ell-1}) \ \text{(causal self-attention)}, \qquad
    p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}\big(\mathrm{LN}(h_L)_t\, E^\top\big)

Generation reads the prompt once and then one token per step: each layer's keys and
values of the positions seen so far sit in a :class:`~archzoo.layers.attention.KVCache`
that :meth:`GPT.generate` allocates for the call (never module state, so it enters no
state_dict, checkpoint or weight average). A step then costs attention over the cache
instead of a forward pass over the whole context.

:func:`gpt2_state_dict` maps a Hugging Face ``GPT2LMHeadModel`` state_dict onto
:class:`GPT` (GPT-2's ``Conv1D`` stores its weights as ``(in, out)``, the transpose of a
``Linear``'s), and :meth:`GPT.from_pretrained` reads a local Hugging Face folder
(``config.json`` and ``model.safetensors``; pickled ``.bin`` files are refused).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.attention import KVCache
from archzoo.layers.checkpoint import GradCheckpointing
from archzoo.layers.positional import POSITIONS, RotaryEmbedding, make_positions
from archzoo.layers.transformer import TransformerBlock
from archzoo.models._variant import variant
from archzoo.registry import register_model


class GPT(GradCheckpointing, nn.Module):
    r"""A causal Transformer language model: embeddings, pre-norm blocks, a final LayerNorm, a tied head.

    .. math::
        h_0 = \mathrm{dropout}(E[x] + P_{0:T}), \quad
        h_\ell = h'_\ell + \mathrm{FFN}(\mathrm{LN}(h'_\ell)), \quad
        h'_\ell = h_{\ell-1} + \mathrm{Attn}_{\text{causal}}(\mathrm{LN}(h_{\ell-1})), \quad
        \text{logits} = \mathrm{LN}_f(h_L)\, W_{\text{head}}^\top

    with :math:`W_{\text{head}} = E` when ``tie_weights``. Initialisation follows GPT-2:
    every linear and embedding weight :math:`\mathcal{N}(0, 0.02^2)`, biases zero, and the
    projections that write into the residual stream (``attn.out`` and ``ff.fc2``) scaled by
    :math:`1/\sqrt{2 L}`, as the residual sum adds :math:`2L` of them.

    Inputs longer than ``block_size`` are a :class:`~archzoo.errors.UserError`;
    :meth:`generate` crops its context to the last ``block_size`` tokens instead.

    Args:
        vocab_size: number of token ids :math:`V`.
        block_size: the longest context, in tokens (the position table's length; default 128).
        n_layer: Transformer blocks :math:`L` (default 4).
        n_head: attention heads (default 4).
        n_embd: model width :math:`D`, divisible by ``n_head`` (default 128).
        dropout: dropout on the embeddings, the attention weights and each sub-layer's output (default 0).
        bias: biases in the linears and LayerNorms (default True; False is nanoGPT's no-bias form).
        positions: ``"learned"`` (default, GPT-2), ``"sinusoidal"``, ``"rope"`` (rotary, inside
            attention) or ``"none"``.
        activation: the feed-forward activation (default ``"gelu"``; GPT-2's is ``"gelu_tanh"``).
        attention: the attention kernel (default ``"sdpa"``; ``"manual"`` is written out).
        tie_weights: share the token embedding and the LM head's weight (default True).
        eps: LayerNorm epsilon (default 1e-5).

    Shapes:
        input ``x`` :math:`(B, T)` token ids with :math:`T \le` ``block_size``; output logits
        :math:`(B, T, V)` and None (a GPT carries no recurrent state).
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 128,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.0,
        bias: bool = True,
        positions: str = "learned",
        activation: str = "gelu",
        attention: str = "sdpa",
        tie_weights: bool = True,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if vocab_size < 1 or block_size < 1 or n_layer < 1:
            raise UserError(
                f"A GPT needs vocab_size, block_size and n_layer of at least 1, got {vocab_size}, {block_size}, {n_layer}."
            )
        if positions not in POSITIONS:
            raise UserError(f"model.args.positions must be one of {', '.join(POSITIONS)}, got '{positions}'.")
        if n_head < 1 or n_embd % n_head:
            raise UserError(f"model.args.n_embd ({n_embd}) must divide by model.args.n_head ({n_head}).")
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.tie_weights = tie_weights
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.pos = make_positions(positions, n_embd, block_size)  # None for rope and none
        rope = RotaryEmbedding(n_embd // n_head, block_size) if positions == "rope" else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                n_embd,
                n_head,
                4 * n_embd,
                dropout,
                activation=activation,
                norm_first=True,
                bias=bias,
                eps=eps,
                attention=attention,
                max_len=block_size,
                rope=rope,
            )
            for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd, eps=eps, bias=bias)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.reset_parameters()
        if tie_weights:
            self.head.weight = self.wte.weight

    def reset_parameters(self) -> None:
        """GPT-2's initialisation: weights :math:`\\mathcal{N}(0, 0.02^2)`, residual projections by :math:`1/\\sqrt{2L}`."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.pos is not None and isinstance(getattr(self.pos, "weight", None), nn.Parameter):
            nn.init.normal_(self.pos.weight, std=0.02)
        scaled = 0.02 / math.sqrt(2 * self.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.out.weight, std=scaled)
            nn.init.normal_(block.ff.fc2.weight, std=scaled)

    # ------------------------------------------------------------------- forward

    def forward_features(self, x: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """The final LayerNorm's output :math:`(B, T, D)`; with ``caches``, ``x`` continues the cached positions."""
        t = x.shape[1]
        offset = caches[0].length if caches else 0
        if offset + t > self.block_size:
            raise UserError(
                f"The input reaches {offset + t} tokens, past this GPT's block_size of {self.block_size}; "
                "shorten it (generation crops its context to the last block_size tokens)."
            )
        h = self.wte(x)  # (B, T, D)
        if self.pos is not None:
            h = self.pos(h, offset)
        h = self.drop(h)
        for i, block in enumerate(self.blocks):
            cache = (caches[i], None) if caches else None
            h, _ = block(h, causal=True, cache=cache)  # (B, T, D)
        return self.ln_f(h)

    def forward(self, x: Tensor, state: Any = None, targets: Tensor | None = None) -> tuple[Tensor, None]:
        """Logits :math:`(B, T, V)` and None, the ``(logits, state)`` pair of a language model.

        A GPT keeps no state between batches: ``state`` must be None (train it with
        ``task.args.carry_state: false``); ``targets`` are not used (the task scores the logits).
        """
        if state is not None:
            raise UserError("A GPT carries no state between batches; set task.args.carry_state=false.")
        return self.head(self.forward_features(x)), None  # (B, T, V)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor]:
        """Token ids :math:`(B, \\min(8, \\text{block\\_size}))`."""
        g = torch.Generator().manual_seed(0)
        t = min(8, self.block_size)
        return (torch.randint(0, self.vocab_size, (batch_size, t), generator=g).to(self.wte.weight.device),)

    # ------------------------------------------------------------------- generation

    @torch.no_grad()
    def generate(
        self,
        ids: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        r"""Continue ``ids`` by ``max_new_tokens`` tokens, each drawn from the last position's distribution.

        The next token is the argmax when ``temperature == 0``, else a draw from
        :math:`\mathrm{softmax}(\text{logits} / \tau)` restricted to the ``top_k`` most likely
        tokens and to the nucleus of mass ``top_p`` (:func:`~archzoo.tasks.language_model.filter_logits`).

        The model sees at most the last ``block_size`` tokens: a longer prompt is cropped to them.
        With ``use_cache`` a fresh :class:`~archzoo.layers.attention.KVCache` per layer holds the
        keys and values: the (cropped) prompt is read once, then each step reads one token. When
        the context would pass ``block_size``, each further step re-reads the last ``block_size``
        tokens into the emptied caches (learned positions cannot slide), which is the window the
        uncached path reads, so both give the same tokens at any length; past the block a step
        costs a whole forward pass, as without the cache. Without the cache every step recomputes
        the whole cropped context. The mode (train/eval) is the caller's.

        Args:
            ids: the prompt, token ids :math:`(B, P)` with :math:`P \ge 1`.
            max_new_tokens: tokens to add :math:`N \ge 0`.
            temperature: softmax temperature; 0 picks the most likely token (default 1).
            top_k: keep the ``k`` most likely tokens only; 0 keeps all (default 0).
            top_p: keep the smallest set of tokens holding this probability (default 1: all).
            generator: the random generator of the draws (default torch's global one).
            use_cache: decode with KV caches (default True).

        Returns:
            :math:`(B, P + N)` token ids: the whole prompt, then the new tokens.
        """
        from archzoo.tasks.language_model import filter_logits

        if ids.dim() != 2 or ids.shape[1] < 1:
            raise UserError(f"generate needs a prompt of shape (B, P) with P >= 1, got {tuple(ids.shape)}.")
        if max_new_tokens < 0:
            raise UserError(f"max_new_tokens must be non-negative, got {max_new_tokens}.")
        if temperature < 0:
            raise UserError(f"temperature must be non-negative, got {temperature}.")
        if top_k < 0:
            raise UserError(f"top_k must be non-negative (0 is off), got {top_k}.")
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {top_p}.")
        out = ids
        if max_new_tokens == 0:
            return out
        caches = [KVCache(self.block_size) for _ in self.blocks] if use_cache else None

        def read(context: Tensor) -> Tensor:
            if caches is not None:
                for c in caches:
                    c.length = 0  # the storage stays; the positions start again at 0
            return self.head(self.forward_features(context, caches)[:, -1])  # (B, V)

        logits = read(out[:, -self.block_size :])
        for i in range(max_new_tokens):
            last = logits.float()  # (B, V)
            if temperature == 0:
                nxt = last.argmax(-1, keepdim=True)  # (B, 1)
            else:
                probs = filter_logits(last / temperature, top_k, top_p).softmax(-1)  # (B, V)
                nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            out = torch.cat([out, nxt], 1)  # (B, P + i + 1)
            if i + 1 == max_new_tokens:
                break
            if caches is not None and caches[0].length < self.block_size:
                logits = self.head(self.forward_features(nxt, caches)[:, -1])  # one step over the cache
            else:
                logits = read(out[:, -self.block_size :])
        return out

    # ------------------------------------------------------------------- Hugging Face GPT-2

    @classmethod
    def from_gpt2(cls, state: dict[str, Tensor], config: dict[str, Any], source: str = "the state_dict") -> GPT:
        """A :class:`GPT` holding the weights of a Hugging Face GPT-2 ``state`` built with ``config``.

        Args:
            state: a ``GPT2LMHeadModel`` (or ``GPT2Model``) state_dict.
            config: its ``config.json`` as a dict.
            source: what to name in error messages (the folder).
        """
        model = cls(**gpt2_args(config, source))
        model.load_state_dict(gpt2_state_dict(state, model, source))
        return model

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> GPT:
        """Load a local Hugging Face GPT-2 folder: ``config.json`` and ``model.safetensors`` (or its shards).

        Pickled weights (``pytorch_model.bin``) are refused: archzoo never unpickles a file.
        A missing or mis-shaped tensor is a :class:`~archzoo.errors.UserError` naming it.
        """
        from safetensors.torch import load_file

        path = Path(folder)
        if not path.is_dir():
            raise UserError(f"The pretrained folder {path} does not exist.")
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise UserError(f"The pretrained folder {path} has no config.json.")
        try:
            config = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{cfg_file} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}).") from None
        gpt2_args(config, str(path))  # refuse an unsupported config before reading any weights
        index = path / "model.safetensors.index.json"
        if (path / "model.safetensors").is_file():
            files = [path / "model.safetensors"]
        elif index.is_file():
            try:
                names = sorted({str(f) for f in json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()})
            except (ValueError, KeyError, TypeError, AttributeError):
                raise UserError(f"{index} is not a safetensors index (JSON with a weight_map).") from None
            if any(Path(f).name != f or not f.endswith(".safetensors") for f in names):
                raise UserError(f"{index} names weights files that are not .safetensors files in {path}.")
            files = [path / f for f in names]
        elif any(path.glob("*.bin")) or any(path.glob("*.pt")) or any(path.glob("*.pth")):
            raise UserError(
                f"The pretrained folder {path} holds only pickled weights (.bin/.pt), which archzoo never loads; "
                "convert them to model.safetensors."
            )
        else:
            raise UserError(f"The pretrained folder {path} has no model.safetensors.")
        state: dict[str, Tensor] = {}
        for f in files:
            if not f.is_file():
                raise UserError(f"The pretrained folder {path} lacks the weights file {f.name} its index names.")
            try:
                state.update(load_file(str(f)))
            except Exception as e:  # a truncated or foreign file: say which
                raise UserError(f"{f} is not a readable safetensors file ({type(e).__name__}).") from None
        return cls.from_gpt2(state, config, str(path))


#: Hugging Face ``activation_function`` names and archzoo's.
GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def gpt2_args(config: dict[str, Any], source: str = "the config") -> dict[str, Any]:
    """:class:`GPT`'s arguments for a Hugging Face ``GPT2Config`` (as a dict); features it lacks are refused."""
    act = config.get("activation_function", "gelu_new")
    if act not in GPT2_ACTIVATIONS:
        raise UserError(f"The GPT-2 config of {source} uses activation '{act}', which archzoo's GPT does not have.")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if config.get(flag):
            raise UserError(f"The GPT-2 config of {source} sets {flag}, which archzoo's GPT does not implement.")
    if config.get("scale_attn_weights", True) is False:
        raise UserError(f"The GPT-2 config of {source} turns off scale_attn_weights, which archzoo's GPT always uses.")
    n_embd = int(config.get("n_embd", 768))
    inner = config.get("n_inner")
    if inner is not None and int(inner) != 4 * n_embd:
        raise UserError(f"The GPT-2 config of {source} has n_inner={inner}; archzoo's GPT uses 4 * n_embd.")
    return {
        "vocab_size": int(config.get("vocab_size", 50257)),
        "block_size": int(config.get("n_positions", 1024)),
        "n_layer": int(config.get("n_layer", 12)),
        "n_head": int(config.get("n_head", 12)),
        "n_embd": n_embd,
        "activation": GPT2_ACTIVATIONS[act],
        "eps": float(config.get("layer_norm_epsilon", 1e-5)),
        "tie_weights": bool(config.get("tie_word_embeddings", True)),
        "positions": "learned",
        "bias": True,
    }


def gpt2_state_dict(state: dict[str, Tensor], model: GPT, source: str = "the state_dict") -> dict[str, Tensor]:
    """``model``'s state_dict filled from a Hugging Face GPT-2 ``state``.

    ``transformer.`` prefixes are optional (``GPT2Model`` has none). ``Conv1D`` weights
    (``c_attn``, ``c_proj``, ``c_fc``) are stored :math:`(\\text{in}, \\text{out})` and are
    transposed into ``Linear`` weights :math:`(\\text{out}, \\text{in})`. The LM head is the
    tied token embedding, or ``lm_head.weight`` when the model is untied.
    """
    hf = {k.removeprefix("transformer."): v for k, v in state.items()}
    names = {"wte.weight": ("wte.weight", False), "pos.weight": ("wpe.weight", False)}
    for i in range(model.n_layer):
        ours, theirs = f"blocks.{i}.", f"h.{i}."
        for a, b, transpose in (
            ("norm1", "ln_1", False),
            ("attn.qkv", "attn.c_attn", True),
            ("attn.out", "attn.c_proj", True),
            ("norm2", "ln_2", False),
            ("ff.fc1", "mlp.c_fc", True),
            ("ff.fc2", "mlp.c_proj", True),
        ):
            names[f"{ours}{a}.weight"] = (f"{theirs}{b}.weight", transpose)
            names[f"{ours}{a}.bias"] = (f"{theirs}{b}.bias", False)
    names["ln_f.weight"], names["ln_f.bias"] = ("ln_f.weight", False), ("ln_f.bias", False)
    if not model.tie_weights:
        names["head.weight"] = ("lm_head.weight", False)
    target = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, (name, transpose) in names.items():
        full = name if name == "lm_head.weight" else f"transformer.{name}"
        if name not in hf:
            raise UserError(f"The GPT-2 weights of {source} lack the tensor '{full}'.")
        want = tuple(target[key].shape)
        need = want[::-1] if transpose else want  # Conv1D: (in, out)
        got = tuple(hf[name].shape)
        if got != need:
            raise UserError(f"The tensor '{full}' of {source} has shape {got}, but this GPT-2 config needs {need}.")
        out[key] = (hf[name].t() if transpose else hf[name]).contiguous()
    if model.tie_weights:
        out["head.weight"] = out["wte.weight"]
    return out


# ----------------------------------------------------------------------------- registered variants

GPT_ARGS = (
    "vocab_size",
    "block_size",
    "n_layer",
    "n_head",
    "n_embd",
    "dropout",
    "bias",
    "positions",
    "activation",
    "attention",
    "tie_weights",
    "eps",
)


@register_model("gpt")
@variant(GPT, GPT_ARGS)
def gpt(**kwargs: Any) -> GPT:
    """A decoder-only Transformer language model (4 layers, 4 heads, 128 wide by default)."""
    return GPT(**kwargs)
