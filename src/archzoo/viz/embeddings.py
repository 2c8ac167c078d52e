"""Node embeddings of a node-classification run in two dimensions (PCA or t-SNE), coloured by class.

``archzoo viz embeddings RUN [--method pca|tsne] [--out DIR]`` runs the run's model on
its whole graph, takes each node's hidden state from ``model.forward_features``
(:math:`(N, D)`: the first layer's output of the GCN, GAT and GraphSAGE), projects it
to two dimensions with scikit-learn's ``PCA`` or ``TSNE`` (fixed seed), and draws one
point per node coloured by its true class, the training nodes ringed. The picture goes
to ``RUN/embeddings/embeddings_<method>.png`` (or ``--out DIR``) and its path is returned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from archzoo.errors import UserError
from archzoo.viz.figure import save_figure

METHODS = ("pca", "tsne")
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE"}


def project(z: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """``z`` :math:`(N, D)` reduced to :math:`(N, 2)` by ``pca`` or ``tsne`` (a zero column pads ``D = 1``)."""
    if method not in METHODS:
        raise UserError(f"--method must be pca or tsne, got '{method}'.")
    n = z.shape[0]
    if n < 3:
        raise UserError(f"The graph has {n} nodes; a 2-D picture of embeddings needs at least 3.")
    if z.shape[1] < 2:
        z = np.concatenate([z, np.zeros((n, 2 - z.shape[1]), dtype=z.dtype)], 1)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(z)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (n - 1) / 3)  # t-SNE needs perplexity < n
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1).fit_transform(z)


def node_embeddings(run: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The hidden states :math:`(N, D)`, labels :math:`(N,)` and training mask of a node-level run's graph."""
    if run.info.get("kind") != "graph_nodes":
        raise UserError(
            f"Run {run.run_dir} does not classify the nodes of a graph; viz embeddings draws node-level runs "
            "(cora-gcn, karate-gcn)."
        )
    features = getattr(run.model, "forward_features", None)
    if features is None:
        raise UserError(f"The model of run {run.run_dir} has no forward_features to take node states from.")
    split = run.data.train.to(run.device)
    graph = next(iter(split.batches(1)))  # the whole graph, with the training mask
    with torch.no_grad():
        z = features(graph).float().cpu()
    if z.dim() != 2 or z.size(0) != graph.num_nodes:
        raise UserError(f"The model of run {run.run_dir} gives {tuple(z.shape)} features, not one row per node.")
    mask = getattr(graph, "mask", None)
    return z, graph.y.cpu(), None if mask is None else mask.cpu()


def draw_embeddings(
    xy: np.ndarray,
    y: np.ndarray,
    path: Path,
    classes: list[str] | None = None,
    train: np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """A scatter plot of the points ``xy`` :math:`(N, 2)`, one colour per class of ``y``; ``train`` nodes ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = int(y.max()) + 1 if y.size else 0
    names = classes if classes and len(classes) >= num else [f"class {c}" for c in range(num)]
    cmap = plt.get_cmap("tab10" if num <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    size = 30 if len(y) <= 200 else 6
    for c in range(num):
        sel = y == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=cmap(c % cmap.N), label=names[c], linewidths=0)
    if train is not None and train.any():
        ring = {"facecolors": "none", "edgecolors": "black", "linewidths": 0.8}
        ax.scatter(xy[train, 0], xy[train, 1], s=size * 3, label="training nodes", **ring)
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path, dpi=120)


def viz_embeddings(run: Any, method: str = "pca", out_dir: Path | None = None) -> Path:
    """Draw the node embeddings of ``run`` (a loaded node-classification run) reduced by ``method``."""
    if method not in METHODS:
        raise UserError(f"--method must be pca or tsne, got '{method}'.")
    z, y, train = node_embeddings(run)
    xy = project(z.numpy(), method)
    out_dir = Path(out_dir) if out_dir else Path(run.run_dir) / "embeddings"
    title = f"{run.cfg.recipe or run.cfg.model.name}: {z.size(1)}-d node states, {METHOD_NAMES[method]}"
    mask = None if train is None else train.numpy()
    return draw_embeddings(xy, y.numpy(), out_dir / f"embeddings_{method}.png", run.info.get("classes"), mask, title)
