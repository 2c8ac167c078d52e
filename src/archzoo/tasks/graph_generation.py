r"""Graph generation: train a graph VAE on a set of small graphs, sample graphs, score them by MMD.

Training minimises the model's negative ELBO per graph (:mod:`archzoo.models.graph_vae`),
on PyG mini-batches of graphs (:class:`~archzoo.data.splits.GraphBatches`); a batch counts its
graphs. ``archzoo sample RUN --n 16 --seed 0`` draws graphs whose sizes come from the
training graphs (``info["train_sizes"]``) and writes each as an edge list
(``graph_000.txt``: a ``# nodes N`` line, then one ``i j`` line per edge) and all of them as
one PNG of drawings (``graphs.png``, drawn by :mod:`archzoo.viz.graphs`).

Scores (You et al. 2018, GraphRNN, https://arxiv.org/abs/1802.08773, and the Gaussian
total-variation kernel of its successors' evaluation code): each graph becomes a histogram,
of its node degrees (bins :math:`0, 1, \dots`) or of its nodes' clustering coefficients
(100 bins over :math:`[0, 1]`), normalised to sum to 1. Two sets of histograms
:math:`X = \{x_i\}_{i=1}^m` and :math:`Y = \{y_j\}_{j=1}^n` are compared by the (biased,
squared) maximum mean discrepancy

.. math::
    \mathrm{MMD}^2(X, Y) = \frac{1}{m^2}\sum_{i,i'} k(x_i, x_{i'}) + \frac{1}{n^2}\sum_{j,j'} k(y_j, y_{j'})
        - \frac{2}{mn}\sum_{i,j} k(x_i, y_j), \qquad
    k(x, y) = \exp\!\left(-\frac{\mathrm{TV}(x, y)^2}{2\sigma^2}\right), \quad
    \mathrm{TV}(x, y) = \tfrac12 \lVert x - y \rVert_1

with :math:`\sigma = 1` for degrees and :math:`\sigma = 0.1` for clustering. It is 0 for
two equal sets and grows as the distributions part (at most 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import Option, Picture, Task
from archzoo.tasks.generative import Means, check_finite
from archzoo.utils import unwrap

# ----------------------------------------------------------------------------- graph statistics


def _check_adj(adj: Tensor) -> Tensor:
    if adj.dim() != 2 or adj.size(0) != adj.size(1):
        raise UserError(f"An adjacency matrix must be square, got shape {tuple(adj.shape)}.")
    return adj.float()


def degrees(adj: Tensor) -> Tensor:
    """Node degrees :math:`(n,)` of a 0/1 adjacency matrix :math:`(n, n)` (symmetric, zero diagonal)."""
    return _check_adj(adj).sum(1)


def clustering(adj: Tensor) -> Tensor:
    r"""Local clustering coefficients :math:`(n,)`: :math:`c_i = \frac{(A^3)_{ii}}{d_i (d_i - 1)}`, 0 where :math:`d_i < 2`.

    :math:`(A^3)_{ii}` counts the closed walks of length 3 from :math:`i`, twice each triangle through it,
    so :math:`c_i` is the share of its :math:`\binom{d_i}{2}` neighbour pairs that are linked (as networkx's).
    """
    a = _check_adj(adj)
    closed = ((a @ a) * a).sum(1)  # (n,): (A^3)_ii
    d = a.sum(1)
    pairs = d * (d - 1)
    return torch.where(pairs > 0, closed / pairs.clamp_min(1.0), torch.zeros_like(d))


def degree_histogram(adj: Tensor) -> Tensor:
    """Counts of nodes of degree :math:`0, 1, \\dots, \\max d` (``networkx.degree_histogram``)."""
    d = degrees(adj).long()
    return torch.bincount(d, minlength=1).float()


def clustering_histogram(adj: Tensor, bins: int = 100) -> Tensor:
    """Counts of the clustering coefficients in ``bins`` equal bins over [0, 1] (1.0 in the last bin)."""
    c = clustering(adj)
    idx = (c * bins).long().clamp(0, bins - 1)
    return torch.bincount(idx, minlength=bins).float()


def gaussian_tv_kernel(x: Tensor, y: Tensor, sigma: float) -> Tensor:
    r""":math:`k(x_i, y_j) = \exp(-\mathrm{TV}^2 / 2\sigma^2)` for histograms ``x`` :math:`(m, B)`, ``y`` :math:`(n, B)`: :math:`(m, n)`."""
    tv = 0.5 * torch.cdist(x.double(), y.double(), p=1)  # (m, n)
    return torch.exp(-tv.pow(2) / (2 * sigma**2))


def _stack(hists: list[Tensor], width: int) -> Tensor:
    """Histograms padded with zeros to ``width`` and normalised to sum 1: :math:`(m, \\text{width})`."""
    out = torch.zeros(len(hists), width, dtype=torch.float64)
    for i, h in enumerate(hists):
        out[i, : h.numel()] = h.double()
    return out / out.sum(1, keepdim=True).clamp_min(1e-12)


def mmd(xs: list[Tensor], ys: list[Tensor], sigma: float = 1.0) -> float:
    """The biased squared MMD of two sets of histograms under :func:`gaussian_tv_kernel` (module docstring).

    Histograms of different lengths are padded with zeros; each is normalised to sum 1.
    """
    if not xs or not ys:
        raise UserError("MMD needs at least one graph in each set.")
    width = max(h.numel() for h in [*xs, *ys])
    x, y = _stack(xs, width), _stack(ys, width)
    kxx = gaussian_tv_kernel(x, x, sigma).mean()
    kyy = gaussian_tv_kernel(y, y, sigma).mean()
    kxy = gaussian_tv_kernel(x, y, sigma).mean()
    return float(kxx + kyy - 2 * kxy)


def graph_mmds(sampled: list[Tensor], reference: list[Tensor]) -> dict[str, float]:
    """``degree_mmd`` (:math:`\\sigma = 1`) and ``clustering_mmd`` (:math:`\\sigma = 0.1`) of two lists of adjacency matrices."""
    return {
        "degree_mmd": mmd([degree_histogram(a) for a in sampled], [degree_histogram(a) for a in reference], 1.0),
        "clustering_mmd": mmd(
            [clustering_histogram(a) for a in sampled], [clustering_histogram(a) for a in reference], 0.1
        ),
    }


def adjacency_list(data_list: list[Any]) -> list[Tensor]:
    """Dense 0/1 adjacency matrices of PyG graphs."""
    out = []
    for d in data_list:
        n = int(d.num_nodes)
        a = torch.zeros(n, n)
        a[d.edge_index[0], d.edge_index[1]] = 1.0
        a.fill_diagonal_(0.0)
        out.append(a)
    return out


def unpad(adj: Tensor, counts: Tensor) -> list[Tensor]:
    """Padded adjacency matrices :math:`(G, M, M)` with node counts :math:`(G,)` as a list of :math:`(n_g, n_g)`."""
    return [adj[g, :n, :n].float() for g, n in enumerate(counts.tolist())]


def erdos_renyi(sizes: list[int], p: float, generator: torch.Generator) -> list[Tensor]:
    """One :math:`G(n, p)` graph per size: each pair :math:`i < j` an edge with probability ``p``."""
    out = []
    for n in sizes:
        a = (torch.rand(n, n, generator=generator) < p).float().triu(1)
        out.append(a + a.T)
    return out


def edge_density(adjs: list[Tensor]) -> float:
    """Edges over node pairs, pooled over the graphs (the :math:`p` of a matching Erdős–Rényi model)."""
    edges = sum(float(a.sum()) / 2 for a in adjs)
    pairs = sum(a.size(0) * (a.size(0) - 1) / 2 for a in adjs)
    return edges / max(pairs, 1.0)


def write_edge_list(adj: Tensor, path: Path) -> Path:
    """One graph as text: ``# nodes N``, then ``i j`` per undirected edge (``i < j``)."""
    n = adj.size(0)
    edges = torch.triu(adj, 1).nonzero().tolist()
    path.write_text(f"# nodes {n}\n" + "".join(f"{i} {j}\n" for i, j in edges))
    return path


# ----------------------------------------------------------------------------- the task


class GraphGeneration(Task):
    """Negative ELBO per graph for training; sampled graphs written as edge lists and drawings.

    Training minimises :math:`\text{recon} + \beta\,\text{KL}` (Higgins et al. 2017's :math:`\beta`; a
    :math:`\beta < 1` keeps the node latents from collapsing onto the prior); evaluation reports the
    true bound (:math:`\beta = 1`) as ``neg_elbo``.

    Args:
        beta: KL weight in training (default 1).

    Metrics: ``loss`` (:math:`\beta`-weighted) and ``neg_elbo`` (nats per graph), ``recon`` (edge NLL),
    ``kl`` (graph and node KL).
    """

    monitor = "val/neg_elbo"
    mode = "min"
    sample_options = {
        "n": Option(int, 16, "number of graphs to sample"),
        "seed": Option(int, 0, "seed of the sampling noise"),
    }

    def __init__(self, beta: float = 1.0) -> None:
        if not beta > 0:
            raise UserError(f"task.args.beta must be positive, got {beta}.")
        self.beta = float(beta)
        self.means: dict[str, Means] = {}

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        m = unwrap(model)
        if not (callable(getattr(m, "neg_elbo", None)) and callable(getattr(m, "sample", None))):
            raise UserError(f"Graph generation needs a graph generator (graph_vae); {type(m).__name__} is not one.")

    def count(self, batch: Any) -> int:
        return int(batch.num_graphs)

    def _terms(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        t = unwrap(model).neg_elbo(model(batch), batch)
        kl = t["kl_graph"] + t["kl_nodes"]
        return t["recon"], kl  # (G,) each

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        recon, kl = self._terms(model, batch)
        loss = (recon + self.beta * kl).mean()  # -ELBO (beta = 1), nats per graph
        logs = {"recon": recon.mean().detach(), "kl": kl.mean().detach(), "neg_elbo": (recon + kl).mean().detach()}
        return loss, logs

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        recon, kl = self._terms(model, batch)
        check_finite(recon + kl, "evaluation")
        loss = recon + self.beta * kl
        n = int(batch.num_graphs)
        self.means.setdefault(split, Means()).add(n, loss=loss, neg_elbo=recon + kl, recon=recon, kl=kl)

    def compute(self, split: str) -> dict[str, float]:
        res = self.means.pop(split, Means()).result()
        return {f"{split}/{k}": v for k, v in res.items()}

    def sample(self, run: Any, out_dir: Path, **options: Any) -> list[Path | Picture]:
        n, seed = int(options.get("n", 16)), int(options.get("seed", 0))
        if n < 1:
            raise UserError(f"--n must be at least 1, got {n}.")
        model = unwrap(run.model).eval()
        sizes = torch.tensor(list(run.info.get("train_sizes") or []), dtype=torch.long)
        adj, counts = model.sample(n, sizes if len(sizes) else None, generator=torch.Generator().manual_seed(seed))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path | Picture] = [
            write_edge_list(a, out_dir / f"graph_{i:03d}.txt") for i, a in enumerate(unpad(adj, counts))
        ]
        written.append(Picture(out_dir / "graphs.png", "graphs", adj, labels=counts, title=f"{n} sampled graphs"))
        return written


@register_task("graph_generation")
def graph_generation(beta: float = 1.0) -> GraphGeneration:
    return GraphGeneration(beta)
