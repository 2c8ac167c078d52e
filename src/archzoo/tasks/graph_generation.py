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

Molecules (data with ``info["elements"]`` and ``info["bond_types"]``, e.g. ``molecule_graphs``):
each sampled graph becomes an RDKit molecule of its sampled atoms (heavy atoms; hydrogens
implicit) and kekulised bonds (:func:`to_molecule`), and is scored by

* **validity**: the share of sampled graphs that ``Chem.SanitizeMol`` accepts **and** that are
  connected. A disconnected graph counts invalid, as in MolGAN's evaluation (De Cao & Kipf
  2018, https://arxiv.org/abs/1805.11973; its ``MolecularMetrics.valid_lambda_special``
  rejects a SMILES holding a ``.``);
  we do not keep the largest fragment, which would call a sample valid that the model did
  not draw as one molecule;
* **uniqueness**: distinct canonical SMILES over the valid ones;
* **novelty**: the share of the distinct valid ones whose canonical SMILES is not a training
  molecule's (GraphVAE, Simonovsky & Komodakis 2018, https://arxiv.org/abs/1802.03480, and
  JT-VAE report the same three).

A random baseline draws graphs of the training sizes with the training edge density
(Erdős–Rényi), atoms from the training atom-type marginal and bond types from the
training bond-type marginal (:func:`random_molecules`).
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


def write_edge_list(
    adj: Tensor, path: Path, atoms: list[str] | None = None, bonds: Tensor | None = None, names: Any = None
) -> Path:
    """One graph as text: ``# nodes N``, then ``i j`` per undirected edge (``i < j``).

    With ``atoms`` (one symbol per node) an ``# atoms C C O ...`` line follows the first, and with
    ``bonds`` (type indices :math:`(n, n)`) and ``names`` each edge line ends in its bond type's name.
    """
    n = adj.size(0)
    edges = torch.triu(adj, 1).nonzero().tolist()
    head = f"# nodes {n}\n" + (f"# atoms {' '.join(atoms)}\n" if atoms is not None else "")
    if bonds is not None and names is not None:
        lines = "".join(f"{i} {j} {names[int(bonds[i, j])]}\n" for i, j in edges)
    else:
        lines = "".join(f"{i} {j}\n" for i, j in edges)
    path.write_text(head + lines)
    return path


# ----------------------------------------------------------------------------- molecules


def to_molecule(adj: Tensor, atoms: list[str], bonds: Tensor, bond_names: Any) -> Any:
    """An (unsanitised) RDKit ``RWMol`` of one graph: atom ``i`` the element ``atoms[i]``, edge ``i<j`` of bond type
    ``bond_names[bonds[i, j]]`` (``"SINGLE"``, ``"DOUBLE"``, ``"TRIPLE"``, ``"AROMATIC"``)."""
    from rdkit import Chem

    if len(atoms) != adj.size(0):
        raise UserError(f"to_molecule got {len(atoms)} atoms for a graph of {adj.size(0)} nodes.")
    mol = Chem.RWMol()
    for sym in atoms:
        mol.AddAtom(Chem.Atom(sym))
    for i, j in torch.triu(_check_adj(adj), 1).nonzero().tolist():
        mol.AddBond(i, j, getattr(Chem.BondType, str(bond_names[int(bonds[i, j])])))
    return mol


def molecule_smiles(mol: Any) -> str | None:
    """Canonical SMILES of a molecule that sanitises and is one fragment, else None (RDKit's log silenced).

    Works on a copy: ``mol`` is not changed.
    """
    from rdkit import Chem, RDLogger

    if mol.GetNumAtoms() == 0:
        return None
    m = Chem.Mol(mol)
    RDLogger.DisableLog("rdApp.*")
    try:
        Chem.SanitizeMol(m)
    except Exception:  # RDKit raises several kinds (valence, kekulisation, ...): each means invalid
        return None
    finally:
        RDLogger.EnableLog("rdApp.*")
    if len(Chem.GetMolFrags(m)) != 1:  # disconnected counts invalid (MolGAN's convention)
        return None
    return Chem.MolToSmiles(m)


def invalid_reasons(mols: list[Any]) -> dict[str, float]:
    """Why samples are invalid: the share that are ``connected`` (one fragment) and that ``sanitise`` (valences
    and kekulisation pass, connected or not)."""
    from rdkit import Chem, RDLogger

    connected = sanitise = 0
    RDLogger.DisableLog("rdApp.*")
    try:
        for mol in mols:
            connected += len(Chem.GetMolFrags(mol)) == 1
            m = Chem.Mol(mol)
            try:
                Chem.SanitizeMol(m)
                sanitise += 1
            except Exception:  # any RDKit sanitisation error
                pass
    finally:
        RDLogger.EnableLog("rdApp.*")
    n = max(len(mols), 1)
    return {"connected": connected / n, "sanitises": sanitise / n}


def raw_smiles(mol: Any) -> str:
    """A SMILES of a molecule as drawn, without sanitising (for marking the invalid ones)."""
    from rdkit import Chem

    try:
        return Chem.MolToSmiles(mol, canonical=False)
    except Exception:  # a molecule RDKit cannot even write
        return "?"


def molecule_scores(smiles: list[str | None], train_smiles: Any) -> dict[str, float]:
    """``validity``, ``uniqueness`` and ``novelty`` (module docstring) of sampled canonical SMILES (None: invalid)."""
    if not smiles:
        raise UserError("Molecule scores need at least one sampled graph.")
    valid = [s for s in smiles if s is not None]
    unique = set(valid)
    train = set(train_smiles)
    return {
        "validity": len(valid) / len(smiles),
        "uniqueness": len(unique) / len(valid) if valid else 0.0,
        "novelty": len(unique - train) / len(unique) if unique else 0.0,
        "valid": len(valid),
        "unique": len(unique),
        "novel": len(unique - train),
    }


def typed_graphs(adj: Tensor, counts: Tensor, node_types: Tensor, bond_types: Tensor) -> list[tuple]:
    """Padded typed samples as ``(adjacency (n, n), node types (n,), bond types (n, n))`` per graph."""
    return [(adj[g, :n, :n].float(), node_types[g, :n], bond_types[g, :n, :n]) for g, n in enumerate(counts.tolist())]


def molecules_of(graphs: list[tuple], elements: Any, bond_names: Any) -> list[Any]:
    """RDKit molecules of typed graphs (:func:`typed_graphs`)."""
    return [to_molecule(a, [elements[int(t)] for t in nt], bt, bond_names) for a, nt, bt in graphs]


def type_marginals(data_list: list[Any], node_types: int, edge_types: int) -> tuple[Tensor, Tensor]:
    """The training share of each node type :math:`(T,)` and of each bond type over the edges :math:`(B,)`."""
    nodes = torch.cat([d.node_type for d in data_list])
    edges = torch.cat([d.edge_type for d in data_list])
    p_node = torch.bincount(nodes, minlength=node_types).double()
    p_edge = torch.bincount(edges, minlength=edge_types).double()
    return p_node / p_node.sum(), p_edge / p_edge.sum().clamp_min(1.0)


def random_molecules(
    sizes: list[int], density: float, p_node: Tensor, p_edge: Tensor, generator: torch.Generator
) -> list[tuple]:
    """The random baseline: Erdős–Rényi graphs of ``sizes`` and edge probability ``density``, atom types drawn
    from ``p_node`` and each edge's bond type from ``p_edge`` (independently), as :func:`typed_graphs` tuples."""
    out = []
    for a in erdos_renyi(sizes, density, generator):
        n = a.size(0)
        nt = torch.multinomial(p_node.float(), n, replacement=True, generator=generator)  # (n,)
        bt = torch.multinomial(p_edge.float(), n * n, replacement=True, generator=generator).reshape(n, n).triu(1)
        out.append((a, nt, (bt + bt.T) * a.long()))
    return out


def write_smiles(mols: list[Any], path: Path) -> tuple[Path, list[str | None]]:
    """``smiles.txt``: per graph ``graph_000<TAB>SMILES`` (canonical) or ``graph_000<TAB>INVALID<TAB>raw SMILES``."""
    smiles = [molecule_smiles(m) for m in mols]
    lines = [
        f"graph_{i:03d}\t{s}\n" if s is not None else f"graph_{i:03d}\tINVALID\t{raw_smiles(m)}\n"
        for i, (m, s) in enumerate(zip(mols, smiles, strict=True))
    ]
    path.write_text("".join(lines))
    return path, smiles


# ----------------------------------------------------------------------------- the task


class GraphGeneration(Task):
    r"""Negative ELBO per graph for training; sampled graphs written as edge lists and drawings.

    Training minimises :math:`\text{recon} + \beta\,\text{KL}` (Higgins et al. 2017's :math:`\beta`; a
    :math:`\beta < 1` keeps the node latents from collapsing onto the prior); evaluation reports the
    true bound (:math:`\beta = 1`) as ``neg_elbo``.

    Args:
        beta: KL weight in training (default 1).

    Metrics: ``loss`` (:math:`\beta`-weighted) and ``neg_elbo`` (nats per graph), ``recon`` (edge NLL),
    ``kl`` (graph and node KL).
    """

    export_refusal = "it samples graphs from latent codes, with node counts drawn from the data, not one forward pass"

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
        elements, bond_names = run.info.get("elements"), run.info.get("bond_types")
        molecules = bool(elements and bond_names)
        drawn = model.sample(
            n, sizes if len(sizes) else None, generator=torch.Generator().manual_seed(seed), types=molecules
        )
        adj, counts = drawn[0], drawn[1]
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path | Picture] = []
        if molecules:
            graphs = typed_graphs(*drawn)
            for i, (a, nt, bt) in enumerate(graphs):
                atoms = [elements[int(t)] for t in nt]
                written.append(write_edge_list(a, out_dir / f"graph_{i:03d}.txt", atoms, bt, bond_names))
            written.append(write_smiles(molecules_of(graphs, elements, bond_names), out_dir / "smiles.txt")[0])
        else:
            written += [write_edge_list(a, out_dir / f"graph_{i:03d}.txt") for i, a in enumerate(unpad(adj, counts))]
        written.append(Picture(out_dir / "graphs.png", "graphs", adj, labels=counts, title=f"{n} sampled graphs"))
        return written


@register_task("graph_generation")
def graph_generation(beta: float = 1.0) -> GraphGeneration:
    return GraphGeneration(beta)
