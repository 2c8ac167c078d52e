r"""A graph VAE that generates small graphs: node latents under a graph latent, and a pairwise edge decoder.

The model is the variational graph autoencoder of Kipf & Welling (2016,
https://arxiv.org/abs/1611.07308) — a GCN encoder giving each node a Gaussian
posterior and a decoder that scores each node pair from the two latents — made a
generator of whole graphs by a graph-level latent :math:`z_G` under which the node
latents are drawn (a two-level prior, so that the nodes of one sampled graph share a
context instead of being independent):

.. math::
    p(z_G) = \mathcal N(0, I), \qquad
    p(z_i \mid z_G) = \mathcal N\!\left(\mu_p(z_G), \operatorname{diag} \sigma_p(z_G)^2\right), \qquad
    p(A_{ij} = 1 \mid z_i, z_j) = \sigma\!\left(f([z_i \odot z_j,\; |z_i - z_j|])\right)

for every pair :math:`i < j`, with :math:`f` an MLP; the pair features are symmetric in
:math:`i, j`, so :math:`A` is. The encoder runs GCN layers over the graph, reads the node
states out into one vector per graph (:class:`~archzoo.layers.readout.Readout`) for
:math:`q(z_G \mid G)`, and maps each node state to :math:`q(z_i \mid G)`. The loss is the
negative ELBO per graph, every term in closed form except the reconstruction (one
reparameterised sample):

.. math::
    \mathcal L(G) = -\sum_{i<j} \log p(A_{ij} \mid z_i, z_j)
        + \mathrm{KL}\!\left(q(z_G \mid G) \,\|\, \mathcal N(0, I)\right)
        + \sum_i \mathrm{KL}\!\left(q(z_i \mid G) \,\|\, p(z_i \mid z_G)\right)

Because both the encoder and the decoder treat nodes as a set (the likelihood is over
the node pairs of the graph's own nodes), no node order and no graph matching is
needed. Sampling draws :math:`n` (from the training graphs' sizes), :math:`z_G`, then
:math:`n` node latents and each edge :math:`A_{ij} \sim \mathrm{Bernoulli}`.

With labelled nodes and edges (molecules: ``node_types`` atom types, ``edge_types`` bond
types) the decoder also gives each node a categorical over its type from its latent and
each pair a categorical over the bond type, and the reconstruction adds their negative
log-likelihoods, of every node's type and of the type of every true edge:

.. math::
    p(t_i \mid z_i) = \operatorname{softmax}(g(z_i)), \qquad
    p(b_{ij} \mid z_i, z_j, A_{ij} = 1) = \operatorname{softmax}(h([z_i \odot z_j,\; |z_i - z_j|])),
    \qquad
    -\log p(G \mid z) = -\sum_{i<j} \log p(A_{ij}) - \sum_i \log p(t_i) - \sum_{i<j:\,A_{ij}=1} \log p(b_{ij})

Sampling then draws each node's type and each sampled edge's type from these categoricals.

Sampled graphs are scored as in GraphRNN (You et al. 2018, https://arxiv.org/abs/1802.08773):
the MMD of their degree and clustering distributions against held-out graphs
(:mod:`archzoo.tasks.graph_generation`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.readout import Readout
from archzoo.models._variant import variant
from archzoo.registry import register_model


class GraphVAEOutput(NamedTuple):
    """What :meth:`GraphVAE.forward` returns for a batch of :math:`G` graphs of at most :math:`M` nodes."""

    edge_logits: Tensor  # (G, M, M), symmetric
    node_mask: Tensor  # (G, M) bool: real nodes
    mu: Tensor  # (N, d) node posterior means
    logstd: Tensor  # (N, d)
    graph_mu: Tensor  # (G, d_G)
    graph_logstd: Tensor  # (G, d_G)
    prior_mu: Tensor  # (N, K, d) p(z_i | z_G) of each node's graph: K components
    prior_logstd: Tensor  # (N, K, d)
    prior_logits: Tensor  # (N, K) mixture weights (unnormalised)
    z: Tensor  # (N, d) the node latents decoded (a sample in training, the means in eval)
    node_type_logits: Tensor | None = None  # (G, M, T) with node_types, else None
    bond_logits: Tensor | None = None  # (G, M, M, B) with edge_types, else None


class TypedGraphs(NamedTuple):
    """Graphs drawn by :meth:`GraphVAE.sample` with ``types=True``."""

    adj: Tensor  # (n, M, M) uint8 0/1, symmetric
    counts: Tensor  # (n,) node counts
    node_types: Tensor  # (n, M) long, type index per node (0 in the padding); zeros without node_types
    bond_types: Tensor  # (n, M, M) long, type index per sampled edge (0 elsewhere); zeros without edge_types


def gaussian_kl(mu: Tensor, logstd: Tensor, mu_p: Tensor | None = None, logstd_p: Tensor | None = None) -> Tensor:
    r""":math:`\mathrm{KL}(\mathcal N(\mu, \sigma^2) \| \mathcal N(\mu_p, \sigma_p^2))` summed over the last dim
    (:math:`\mathcal N(0, I)` when ``mu_p`` is None):

    .. math::
        \sum_d \log\frac{\sigma_{p,d}}{\sigma_d} + \frac{\sigma_d^2 + (\mu_d - \mu_{p,d})^2}{2\sigma_{p,d}^2} - \frac12
    """
    if mu_p is None or logstd_p is None:
        mu_p, logstd_p = torch.zeros_like(mu), torch.zeros_like(logstd)
    var_ratio = torch.exp(2 * (logstd - logstd_p))
    return (logstd_p - logstd + 0.5 * (var_ratio + (mu - mu_p).pow(2) * torch.exp(-2 * logstd_p)) - 0.5).sum(-1)


def _log_normal(z: Tensor, mu: Tensor, logstd: Tensor) -> Tensor:
    """:math:`\\log \\mathcal N(z; \\mu, \\sigma^2)` summed over the last dim."""
    return (-0.5 * ((z - mu) * torch.exp(-logstd)).pow(2) - logstd - 0.5 * math.log(2 * math.pi)).sum(-1)


class GraphVAE(nn.Module):
    r"""Graph VAE with a graph latent and node latents, decoding node pairs (see the module docstring).

    Args:
        num_node_features: input node feature width :math:`F`.
        max_nodes: the most nodes a sampled graph may have (default 20); sampling sizes come from data.
        hidden: GCN and MLP width (default 64).
        layers: GCN layers of the encoder (default 3).
        latent: node latent width :math:`d` (default 16).
        graph_latent: graph latent width :math:`d_G` (default 16).
        readout: the encoder's graph readout, one of :data:`~archzoo.layers.readout.READOUTS` (default ``sum``).
        components: Gaussians :math:`K` in the node prior :math:`p(z_i \mid z_G)` (default 1: the closed-form
            KL above); with :math:`K > 1` the prior is a mixture
            :math:`\sum_k \pi_k(z_G)\, \mathcal N(\mu_{p,k}(z_G), \sigma_{p,k}(z_G)^2)` (nodes of different
            communities may come from different components) and the node KL is estimated at the
            posterior sample, :math:`\log q(z_i \mid G) - \log p(z_i \mid z_G)`.
        random_features: standard-normal columns appended to the node features at every pass
            (default 0). A GCN gives nodes that look alike from degree features alone the same state, so
            the two communities of a graph cannot get different latents; random features break the tie
            (random node initialisation, Sato et al. 2021, https://arxiv.org/abs/2002.03155).
        node_types: node labels :math:`T` to decode (default 0: none); the data's ``node_type`` :math:`(N,)`.
        edge_types: edge labels :math:`B` to decode (default 0: none); the data's ``edge_type`` :math:`(E,)`.

    Shapes:
        input a PyG ``Batch`` of :math:`G` graphs (``x`` :math:`(N, F)`, ``edge_index``, ``batch``);
        output :class:`GraphVAEOutput` (``edge_logits`` :math:`(G, M, M)`, :math:`M` the largest graph;
        ``node_type_logits`` :math:`(G, M, T)` and ``bond_logits`` :math:`(G, M, M, B)` when typed).
    """

    def __init__(
        self,
        num_node_features: int,
        max_nodes: int = 20,
        hidden: int = 64,
        layers: int = 3,
        latent: int = 16,
        graph_latent: int = 16,
        readout: str = "sum",
        components: int = 1,
        random_features: int = 0,
        node_types: int = 0,
        edge_types: int = 0,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        if components < 1:
            raise UserError(f"graph_vae needs components >= 1, got {components}.")
        if node_types < 0 or edge_types < 0 or node_types == 1 or edge_types == 1:
            raise UserError(
                f"graph_vae needs node_types and edge_types of 0 (none) or >= 2, got {node_types}, {edge_types}."
            )
        self.node_types, self.edge_types = node_types, edge_types
        self.components = components
        self.random_features = random_features
        if layers < 1 or max_nodes < 2:
            raise UserError(f"graph_vae needs layers >= 1 and max_nodes >= 2, got {layers} and {max_nodes}.")
        self.num_node_features, self.max_nodes, self.latent = num_node_features, max_nodes, latent
        self.graph_latent = graph_latent
        dims = [num_node_features + random_features] + [hidden] * layers
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.readout = Readout(readout, hidden)
        self.node_post = nn.Linear(hidden + graph_latent, 2 * latent)  # q(z_i | G): node state and z_G's mean
        self.graph_post = nn.Linear(self.readout.out_dim, 2 * graph_latent)  # q(z_G | G)
        width = 2 * latent if components == 1 else components * (2 * latent + 1)  # means, log-stds (, logits)
        self.prior = nn.Sequential(nn.Linear(graph_latent, hidden), nn.ReLU(), nn.Linear(hidden, width))
        self.edge_mlp = nn.Sequential(
            nn.Linear(2 * latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
        # Built after the untyped modules, so an untyped model initialises exactly as before.
        self.node_head = (
            nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, node_types)) if node_types else None
        )
        self.bond_head = (
            nn.Sequential(nn.Linear(2 * latent, hidden), nn.ReLU(), nn.Linear(hidden, edge_types))
            if edge_types
            else None
        )

    # ------------------------------------------------------------------ pieces

    def node_states(self, data: Any) -> Tensor:
        h = data.x
        if self.random_features:  # fresh N(0, 1) columns: lets the encoder tell apart nodes that look alike
            h = torch.cat([h, torch.randn(h.size(0), self.random_features, device=h.device, dtype=h.dtype)], 1)
        for conv in self.convs:
            h = F.relu(conv(h, data.edge_index))
        return h  # (N, hidden)

    def prior_params(self, z_graph: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:math:`\\mu_{p,k}(z_G), \\log\\sigma_{p,k}(z_G)` :math:`(\\ldots, K, d)` and mixture logits :math:`(\\ldots, K)`."""
        out = self.prior(z_graph)
        k, d = self.components, self.latent
        if k == 1:
            mu, logstd = out.chunk(2, -1)
            return mu.unsqueeze(-2), logstd.clamp(-6.0, 3.0).unsqueeze(-2), out.new_zeros(*out.shape[:-1], 1)
        logits, rest = out[..., :k], out[..., k:].reshape(*out.shape[:-1], k, 2 * d)
        mu, logstd = rest.chunk(2, -1)
        return mu, logstd.clamp(-6.0, 3.0), logits

    @staticmethod
    def _pairs(z: Tensor) -> Tensor:
        zi, zj = z.unsqueeze(2), z.unsqueeze(1)  # (G, M, 1, d), (G, 1, M, d)
        return torch.cat([(zi * zj), (zi - zj).abs()], -1)  # (G, M, M, 2d): symmetric in i, j

    def pair_logits(self, z: Tensor) -> Tensor:
        """Edge logits of all pairs of padded node latents ``z`` :math:`(G, M, d)`: :math:`(G, M, M)`, symmetric."""
        return self.edge_mlp(self._pairs(z)).squeeze(-1)  # (G, M, M)

    def type_logits(self, z: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Node type logits :math:`(G, M, T)` and bond type logits :math:`(G, M, M, B)` (symmetric) of ``z`` :math:`(G, M, d)`.

        Each is None when the model decodes no such type.
        """
        nodes = self.node_head(z) if self.node_head is not None else None  # (G, M, T)
        bonds = self.bond_head(self._pairs(z)) if self.bond_head is not None else None  # (G, M, M, B)
        return nodes, bonds

    def encode(self, data: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Posterior parameters: node :math:`\\mu, \\log\\sigma` :math:`(N, d)`, graph ones :math:`(G, d_G)`."""
        h = self.node_states(data)
        g = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        batch = data.batch if getattr(data, "batch", None) is not None else h.new_zeros(h.size(0), dtype=torch.long)
        gmu, glogstd = self.graph_post(self.readout(h, batch, g)).chunk(2, -1)  # (G, d_G) each
        mu, logstd = self.node_post(torch.cat([h, gmu[batch]], -1)).chunk(2, -1)  # (N, d) each
        return mu, logstd.clamp(-6.0, 3.0), gmu, glogstd.clamp(-6.0, 3.0)

    # ------------------------------------------------------------------ interface

    def forward(self, data: Any) -> GraphVAEOutput:
        from torch_geometric.utils import to_dense_batch

        mu, logstd, gmu, glogstd = self.encode(data)
        batch = data.batch if getattr(data, "batch", None) is not None else mu.new_zeros(mu.size(0), dtype=torch.long)
        if self.training:  # one reparameterised sample; the means in eval mode
            z = mu + torch.randn_like(mu) * logstd.exp()
            zg = gmu + torch.randn_like(gmu) * glogstd.exp()
        else:
            z, zg = mu, gmu
        pmu, plogstd, plogits = self.prior_params(zg[batch])  # (N, K, d) each, (N, K)
        dense, mask = to_dense_batch(z, batch)  # (G, M, d), (G, M)
        nodes, bonds = self.type_logits(dense)
        return GraphVAEOutput(
            self.pair_logits(dense), mask, mu, logstd, gmu, glogstd, pmu, plogstd, plogits, z, nodes, bonds
        )

    def forward_features(self, data: Any) -> Tensor:
        """The node posterior means :math:`(N, d)`."""
        return self.encode(data)[0]

    def neg_elbo(self, out: GraphVAEOutput, data: Any) -> dict[str, Tensor]:
        """Per-graph terms :math:`(G,)` of the loss: ``recon`` (edge NLL over pairs i<j), ``kl_graph``, ``kl_nodes``.

        A typed model's ``recon`` also holds the node type NLL (``recon_nodes``, from ``data.node_type``) and
        the bond type NLL of the true edges (``recon_bonds``, from ``data.edge_type``), both also returned;
        ``recon_edges`` is then the edge NLL alone.
        """
        from torch_geometric.utils import scatter, to_dense_adj

        g, m = out.node_mask.shape
        batch = data.batch if getattr(data, "batch", None) is not None else out.mu.new_zeros(out.mu.size(0)).long()
        adj = to_dense_adj(data.edge_index, batch, max_num_nodes=m, batch_size=g).clamp(max=1.0)  # (G, M, M)
        pairs = out.node_mask.unsqueeze(2) & out.node_mask.unsqueeze(1)  # (G, M, M)
        pairs = pairs & torch.ones(m, m, dtype=torch.bool, device=adj.device).triu(1)  # i < j only
        bce = F.binary_cross_entropy_with_logits(out.edge_logits, adj, reduction="none")  # (G, M, M)
        recon = (bce * pairs).flatten(1).sum(1)  # (G,)
        typed: dict[str, Tensor] = {}
        if out.node_type_logits is not None:
            if getattr(data, "node_type", None) is None:
                raise UserError("graph_vae with node_types needs graphs with a node_type attribute.")
            from torch_geometric.utils import to_dense_batch

            want, _ = to_dense_batch(data.node_type, batch, max_num_nodes=m, batch_size=g)  # (G, M)
            nll = F.cross_entropy(out.node_type_logits.transpose(1, 2), want, reduction="none")  # (G, M)
            typed["recon_nodes"] = (nll * out.node_mask).sum(1)  # (G,)
        if out.bond_logits is not None:
            if getattr(data, "edge_type", None) is None:
                raise UserError("graph_vae with edge_types needs graphs with an edge_type attribute.")
            kind = to_dense_adj(data.edge_index, batch, edge_attr=data.edge_type.float() + 1, max_num_nodes=m,
                                batch_size=g)  # (G, M, M): type + 1 on edges, 0 elsewhere  # fmt: skip
            on = pairs & (kind > 0)  # true edges i < j
            want = (kind.long() - 1).clamp(min=0)  # (G, M, M)
            nll = F.cross_entropy(out.bond_logits.permute(0, 3, 1, 2), want, reduction="none")  # (G, M, M)
            typed["recon_bonds"] = (nll * on).flatten(1).sum(1)  # (G,)
        if typed:
            typed["recon_edges"] = recon
            recon = recon + sum(v for k, v in typed.items() if k != "recon_edges")
        kl_graph = gaussian_kl(out.graph_mu, out.graph_logstd)  # (G,)
        if self.components == 1:
            kl_node = gaussian_kl(out.mu, out.logstd, out.prior_mu[:, 0], out.prior_logstd[:, 0])  # (N,)
        else:  # log q(z_i) - log p(z_i | z_G) at the decoded latents
            log_q = _log_normal(out.z, out.mu, out.logstd)  # (N,)
            log_pk = _log_normal(out.z.unsqueeze(1), out.prior_mu, out.prior_logstd)  # (N, K)
            log_p = torch.logsumexp(log_pk + out.prior_logits.log_softmax(-1), -1)  # (N,)
            kl_node = log_q - log_p
        kl_nodes = scatter(kl_node, batch, 0, dim_size=g, reduce="sum")  # (G,)
        return {"recon": recon, "kl_graph": kl_graph, "kl_nodes": kl_nodes, **typed}

    @torch.no_grad()
    def sample(
        self, n: int, sizes: Tensor | None = None, generator: torch.Generator | None = None, types: bool = False
    ) -> tuple[Tensor, Tensor] | TypedGraphs:
        """``n`` graphs: adjacency matrices :math:`(n, M, M)` (0/1, symmetric, zero diagonal) and node counts :math:`(n,)`.

        Args:
            n: graphs to draw.
            sizes: the node counts to draw from (uniformly, with replacement); default ``max_nodes`` each.
            generator: a CPU generator for the noise (default the global one).
            types: also draw node and bond types and return :class:`TypedGraphs` (the adjacency and
                counts are the same draw as without: the type noise comes after).
        """
        device = next(self.parameters()).device
        if sizes is None or len(sizes) == 0:
            counts = torch.full((n,), self.max_nodes, dtype=torch.long)
        else:
            sizes = torch.as_tensor(sizes, dtype=torch.long).cpu()
            counts = sizes[torch.randint(len(sizes), (n,), generator=generator)]
        if int(counts.min()) < 1 or int(counts.max()) > 4096:
            raise UserError(
                f"graph sizes must be between 1 and 4096 nodes, got {int(counts.min())}..{int(counts.max())}."
            )
        m = int(counts.max())
        zg = torch.randn(n, self.graph_latent, generator=generator).to(device)  # (n, d_G)
        pmu, plogstd, plogits = self.prior_params(zg)  # (n, K, d) each, (n, K)
        if self.components == 1:
            comp = torch.zeros(n, m, dtype=torch.long, device=device)
        else:
            probs = plogits.softmax(-1).cpu()
            comp = torch.multinomial(probs, m, replacement=True, generator=generator).to(device)  # (n, M)
        pick = comp.unsqueeze(-1).expand(-1, -1, self.latent)  # (n, M, d)
        cmu, clogstd = pmu.gather(1, pick), plogstd.gather(1, pick)  # (n, M, d): each node's component
        eps = torch.randn(n, m, self.latent, generator=generator).to(device)
        z = cmu + eps * clogstd.exp()  # (n, M, d)
        prob = torch.sigmoid(self.pair_logits(z))  # (n, M, M)
        u = torch.rand(n, m, m, generator=generator).to(device)
        upper = torch.ones(m, m, dtype=torch.bool, device=device).triu(1)
        alive = torch.arange(m, device=device) < counts.to(device).unsqueeze(1)  # (n, M)
        a = (u < prob) & upper & alive.unsqueeze(2) & alive.unsqueeze(1)
        a = a | a.transpose(1, 2)  # symmetric
        adj = a.to(torch.uint8).cpu()
        if not types:
            return adj, counts
        nodes_l, bonds_l = self.type_logits(z)  # (n, M, T), (n, M, M, B)
        node_t = torch.zeros(n, m, dtype=torch.long)
        bond_t = torch.zeros(n, m, m, dtype=torch.long)
        if nodes_l is not None:
            p = nodes_l.softmax(-1).reshape(n * m, -1).cpu()  # (n M, T)
            node_t = torch.multinomial(p, 1, generator=generator).reshape(n, m) * alive.cpu()  # (n, M)
        if bonds_l is not None:
            p = bonds_l.softmax(-1).reshape(n * m * m, -1).cpu()  # (n M M, B)
            draw = torch.multinomial(p, 1, generator=generator).reshape(n, m, m).triu(1)  # (n, M, M): i < j
            bond_t = (draw + draw.transpose(1, 2)) * adj.long()  # symmetric, on the sampled edges only
        return TypedGraphs(adj, counts, node_t, bond_t)

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """A PyG ``Batch`` of ``batch_size`` rings of 4 and 5 nodes with random features."""
        from torch_geometric.data import Batch

        from archzoo.models.gnn import _ring

        g = torch.Generator().manual_seed(0)
        graphs = [_ring(4 + i % 2, self.num_node_features, g) for i in range(batch_size)]
        for d in graphs:  # labels for a typed model's likelihood terms
            d.node_type = torch.randint(max(self.node_types, 1), (d.num_nodes,), generator=g)
            d.edge_type = torch.randint(max(self.edge_types, 1), (d.edge_index.size(1),), generator=g)
        return (Batch.from_data_list(graphs),)


@register_model("graph_vae")
@variant(
    GraphVAE,
    ("num_node_features", "max_nodes", "hidden", "layers", "latent", "graph_latent", "readout", "components",
     "random_features", "node_types", "edge_types"),
)  # fmt: skip
def graph_vae(**kwargs: Any) -> GraphVAE:
    """A VGAE-style generator of small graphs: GCN encoder, graph and node latents, pairwise MLP edge decoder."""
    return GraphVAE(**kwargs)
