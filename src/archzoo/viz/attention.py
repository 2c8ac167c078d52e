"""Where a sequence-to-sequence model looks: the attention weights of one decoded input, as a heatmap.

``archzoo viz attention RUN INPUT`` decodes ``INPUT`` greedily with the run's
model and draws :math:`\\alpha_{tj}` (rows: output tokens :math:`t`, columns:
source tokens :math:`j`), each row summing to one, with the tokens as tick
labels, to ``RUN/attention/attention_<INPUT>.png`` (or ``--out DIR``).

A model with ``attention_maps`` (the encoder-decoder Transformer) also gets one heatmap per
layer and head of each kind of attention, teacher-forced on the decoded output, under
``attention_<INPUT>/``: ``encoder_self_l<i>_h<j>.png`` (source by source),
``decoder_self_l<i>_h<j>.png`` (output by the decoder's inputs ``<bos>``, :math:`y_1, y_2, ...`)
and ``decoder_cross_l<i>_h<j>.png`` (output by source).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor

from archzoo.errors import UserError
from archzoo.utils import unwrap


def draw_attention(weights: Tensor, src: list[str], out: list[str], path: Path, title: str | None = None) -> Path:
    """A labelled heatmap of ``weights`` :math:`(T, L_x)` in [0, 1] (``out`` the rows, ``src`` the columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = weights.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(max(3.0, 0.35 * len(src) + 1.5), max(2.5, 0.35 * len(out) + 1.2)))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src)), src, rotation=90 if max(map(len, src), default=1) > 2 else 0)
    ax.set_yticks(range(len(out)), out)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def viz_attention(run: Any, text: str, out_dir: Path | None = None) -> Path:
    """Decode ``text`` with ``run`` (a loaded run of the ``seq2seq`` task) and draw its attention."""
    attention = getattr(run.task, "attention", None)
    if attention is None or "tgt_itos" not in run.info:
        raise UserError(f"Run {run.run_dir} is not a sequence-to-sequence run; it has no attention to draw.")
    src, out, weights = attention(run.model, text, run.info)
    if weights is None:
        raise UserError(f"Run {run.run_dir} was trained without attention (model.args.attention=false).")
    out_dir = Path(out_dir) if out_dir else Path(run.run_dir) / "attention"
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:40] or "input"
    path = draw_attention(weights, src, out, out_dir / f"attention_{name}.png", title=text)
    if hasattr(unwrap(run.model), "attention_maps"):
        draw_layer_maps(run, text, src, out, out_dir / f"attention_{name}")
    return path


def draw_layer_maps(run: Any, text: str, src: list[str], out: list[str], out_dir: Path) -> list[Path]:
    """One heatmap per layer and head of the encoder's self-, the decoder's self- and cross-attention.

    The decoder reads ``<bos>`` and the decoded tokens ``out`` (teacher forced), so its rows are
    the positions that predicted ``out``.
    """
    import torch

    net = unwrap(run.model)
    stoi = {t: i for i, t in enumerate(run.info["tgt_itos"])}
    device = next(net.parameters()).device
    batch = run.task.read_inputs([text], run.info)
    y = torch.tensor([[stoi[t] for t in out]], device=device)  # (1, T)
    was = net.training
    net.eval()
    try:
        maps = net.attention_maps(batch.x.to(device), batch.lengths.to(device), y)
    finally:
        net.train(was)
    dec_in = ["<bos>", *out[:-1]]
    axes = {"encoder_self": (src, src), "decoder_self": (dec_in, out), "decoder_cross": (src, out)}
    paths = []
    for kind, layers in maps.items():
        cols, rows = axes[kind]
        for i, w in enumerate(layers):
            for h in range(w.shape[1]):
                title = f"{kind.replace('_', ' ')}, layer {i}, head {h}"
                paths.append(draw_attention(w[0, h], cols, rows, out_dir / f"{kind}_l{i}_h{h}.png", title=title))
    return paths
