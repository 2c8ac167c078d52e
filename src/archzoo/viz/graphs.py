"""Drawings of graphs: sampled adjacency matrices as one PNG of networkx spring layouts (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

from archzoo.viz.figure import save_figure


def save_graph_drawings(
    adj: Tensor, counts: Tensor | None, path: str | Path, title: str | None = None, seed: int = 0
) -> Path:
    """Draw graphs ``adj`` :math:`(G, M, M)` (0/1; the first ``counts[g]`` nodes of each are real) in a grid.

    Each panel is a spring layout (``networkx.spring_layout`` with a fixed ``seed``), titled
    with its node and edge counts.
    """
    import networkx as nx
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    g = adj.size(0)
    ns = [adj.size(1)] * g if counts is None else [int(c) for c in counts.tolist()]
    cols = max(1, math.ceil(math.sqrt(g)))
    rows = math.ceil(g / cols)
    fig = Figure(figsize=(2.2 * cols, 2.2 * rows + (0.4 if title else 0.0)), dpi=100)
    FigureCanvasAgg(fig)
    for k in range(g):
        ax = fig.add_subplot(rows, cols, k + 1)
        a = adj[k, : ns[k], : ns[k]].cpu().numpy()
        graph = nx.from_numpy_array(a)
        pos = nx.spring_layout(graph, seed=seed)
        nx.draw_networkx(graph, pos, ax=ax, node_size=18, with_labels=False, width=0.6, node_color="tab:blue")
        ax.set_title(f"{graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges", fontsize=7)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, format="png")
