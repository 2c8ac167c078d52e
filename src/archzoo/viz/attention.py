"""Where a sequence-to-sequence model looks: the attention weights of one decoded input, as a heatmap.

``archzoo viz attention RUN INPUT`` decodes ``INPUT`` greedily with the run's
model and draws :math:`\\alpha_{tj}` (rows: output tokens :math:`t`, columns:
source tokens :math:`j`), each row summing to one, with the tokens as tick
labels, to ``RUN/attention/attention.png`` (or ``--out DIR``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor

from archzoo.errors import UserError


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
    return draw_attention(weights, src, out, out_dir / f"attention_{name}.png", title=text)
