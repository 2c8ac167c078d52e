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
from archzoo.viz.figure import save_figure


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
    return save_figure(fig, path, dpi=120)


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


def image_attention_input(run: Any, image: str) -> tuple[Tensor, str]:
    """The model input ``(1, C, H, W)`` that ``image`` names, and a label for titles and file names.

    ``image`` is an image file (read as :func:`~archzoo.data.imagefolder.load_image` reads it for
    ``predict``) or, when no such file exists and it is a whole number, the index of an image of the
    run's test split.
    """
    info = run.info
    path = Path(image)
    if path.is_file():
        from archzoo.data.imagefolder import load_image

        x = load_image(path, info["image_size"], info.get("mean", 0.0), info.get("std", 1.0), info["in_channels"])
        return x, re.sub(r"[^A-Za-z0-9]+", "_", path.stem).strip("_")[:40] or "image"
    if not image.isdigit():
        raise UserError(f"'{image}' is neither an image file nor the index of a test image.")
    test = run.data.split("test")
    n = len(test)
    i = int(image)
    if i >= n:
        raise UserError(f"Test image {i} does not exist: the test split holds {n} images (0 to {n - 1}).")
    x = test.tensors[0][i : i + 1]  # (1, C, H, W), normalised
    y = int(test.tensors[1][i])
    classes = info.get("classes")
    label = classes[y] if classes and y < len(classes) else str(y)
    return x, f"test{i}_{re.sub(r'[^A-Za-z0-9]+', '_', label)}"


def draw_image_attention(image: Tensor, maps: Tensor, path: Path, title: str | None = None) -> Path:
    """The image and, beside it, each head's map ``maps`` :math:`(h, g, g)` overlaid on it, in one row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = image.detach().float().cpu()  # (C, H, W) in [0, 1]
    img = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
    h, w = img.shape[:2]
    heads = maps.shape[0]
    fig, axes = plt.subplots(1, heads + 1, figsize=(1.8 * (heads + 1), 2.2))
    axes[0].imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
    axes[0].set_title("image", fontsize=8)
    for k in range(heads):
        m = maps[k].detach().float().cpu().numpy()
        ax = axes[k + 1]
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
        # Each map cell covers its patch (or stem position): stretch the g x g grid over the image.
        ax.imshow(m, cmap="inferno", alpha=0.6, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
        ax.set_title(f"head {k}", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=120)


def viz_image_attention(run: Any, image: str, out_dir: Path | None = None) -> list[Path]:
    """Where a ViT's class token looks: one PNG per layer, the image beside each head's attention over patches.

    For layer :math:`\\ell` and head :math:`k` the map is row 0 (the class token) of the attention
    weights without its own column, :math:`\\alpha^{\\ell k}_{0j}` for the :math:`N = g^2` patch
    tokens :math:`j`, laid out on the :math:`g \\times g` patch grid and scaled to the image's
    colour range per head. ``image``: an image file, or the index of a test image (see
    :func:`image_attention_input`). Writes ``RUN/attention/<image>_layer<l>.png`` (or under
    ``out_dir``) and returns the paths.
    """
    from archzoo.utils import unwrap

    model = unwrap(run.model)
    if not callable(getattr(model, "attention_maps", None)):
        raise UserError(f"Model '{run.cfg.model.name}' of run {run.run_dir} has no attention maps to draw.")
    x, name = image_attention_input(run, image)
    was = model.training
    model.eval()
    try:
        maps = model.attention_maps(x.to(run.device))  # depth x (1, heads, 1 + N, 1 + N)
        pred = int(model(x.to(run.device)).argmax(-1)[0])
    finally:
        model.train(was)
    g = model.tokens.grid
    mean = x.new_tensor(run.info.get("mean", [0.0])).view(-1, 1, 1)
    std = x.new_tensor(run.info.get("std", [1.0])).view(-1, 1, 1)
    shown = (x[0].cpu() * std + mean).clamp(0, 1)  # (C, H, W) back in [0, 1]
    classes = run.info.get("classes")
    predicted = classes[pred] if classes and pred < len(classes) else str(pred)
    out_dir = Path(out_dir) if out_dir else Path(run.run_dir) / "attention"
    paths = []
    for layer, w in enumerate(maps):
        cls = w[0, :, 0, 1:]  # (heads, N): the class token's weights over the patches
        cls = cls.reshape(-1, g, g)  # (heads, g, g)
        title = f"{name}: layer {layer}, class token over patches (predicted {predicted})"
        paths.append(draw_image_attention(shown, cls, out_dir / f"{name}_layer{layer}.png", title))
    return paths
