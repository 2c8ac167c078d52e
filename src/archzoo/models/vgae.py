r"""Graph autoencoders for link prediction: GAE and VGAE (Kipf & Welling 2016, https://arxiv.org/abs/1611.07308).

An encoder of two GCN layers maps the graph to one latent vector per node and an
inner-product decoder scores every node pair, :math:`p(A_{ij} = 1 \mid z_i, z_j) = \sigma(z_i^\top z_j)`:

.. math::
    \bar A = \hat D^{-1/2} \hat A \hat D^{-1/2}, \qquad
    H = \mathrm{ReLU}(\bar A X W_0), \qquad
    \mu = \bar A H W_\mu, \qquad \log \sigma = \bar A H W_\sigma

The GAE takes :math:`Z = \mu`; the VGAE samples :math:`z_i = \mu_i + \sigma_i \odot \epsilon_i`,
:math:`\epsilon_i \sim \mathcal N(0, I)`, during training (its posterior mean at evaluation) and
maximises the evidence lower bound. With the reconstruction term estimated, as in PyG's
:meth:`~torch_geometric.nn.models.GAE.recon_loss`, on the :math:`P` positive pairs
:math:`E^+` and :math:`Q` sampled non-edges :math:`E^-` instead of all :math:`N^2` pairs,
the loss minimised is

.. math::
    \mathcal L = -\frac{1}{P} \sum_{(i,j) \in E^+} \log \sigma(z_i^\top z_j)
                 -\frac{1}{Q} \sum_{(i,j) \in E^-} \log\left(1 - \sigma(z_i^\top z_j)\right)
                 + \frac{1}{N} \cdot \frac{1}{N} \sum_{i=1}^{N} \mathrm{KL}\left(q(z_i) \,\|\, \mathcal N(0, I)\right),

    \mathrm{KL}\left(q(z_i) \,\|\, \mathcal N(0, I)\right)
        = -\frac12 \sum_{d} \left(1 + 2 \log \sigma_{id} - \mu_{id}^2 - \sigma_{id}^2\right)

(the KL per node, PyG's :meth:`~torch_geometric.nn.models.VGAE.kl_loss`, weighted by
:math:`1/N` as Kipf & Welling's code does). The GAE's loss is the reconstruction term alone.

The models wrap PyG's :class:`~torch_geometric.nn.models.GAE` and
:class:`~torch_geometric.nn.models.VGAE` (with their ``InnerProductDecoder``) around
``GCNConv`` encoders; ``torch_geometric`` is imported when a model is built.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.models._variant import variant
from archzoo.registry import register_model


class GCNEncoder(nn.Module):
    r"""Two ``GCNConv`` layers: :math:`\mu = \bar A\, \mathrm{ReLU}(\bar A X W_0) W_\mu`, and with
    ``variational`` also :math:`\log\sigma = \bar A\, \mathrm{ReLU}(\bar A X W_0) W_\sigma` (sharing :math:`W_0`).

    Args:
        num_node_features: input width :math:`F`.
        hidden: first layer's width (default 32).
        latent: latent width :math:`d` (default 16).
        variational: also return :math:`\log\sigma` (default False).
        cached: normalise the adjacency once (one fixed graph; default False).

    Shapes: ``x`` :math:`(N, F)`, ``edge_index`` :math:`(2, E)`; output :math:`\mu` :math:`(N, d)`,
    or :math:`(\mu, \log\sigma)` when ``variational``.
    """

    def __init__(
        self,
        num_node_features: int,
        hidden: int = 32,
        latent: int = 16,
        variational: bool = False,
        cached: bool = False,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.variational = variational
        self.conv1 = GCNConv(num_node_features, hidden, cached=cached)
        self.conv_mu = GCNConv(hidden, latent, cached=cached)
        self.conv_logstd = GCNConv(hidden, latent, cached=cached) if variational else None

    def hidden(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return F.relu(self.conv1(x, edge_index))  # (N, hidden)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        h = self.hidden(x, edge_index)
        mu = self.conv_mu(h, edge_index)  # (N, d)
        if self.conv_logstd is None:
            return mu
        return mu, self.conv_logstd(h, edge_index)  # (N, d) each


RECONS = ("sampled", "full")


def full_recon_loss(z: Tensor, edge_index: Tensor) -> Tensor:
    r"""Kipf & Welling's reconstruction loss over all node pairs, as in their code (``gae/optimizer.py``).

    The target is :math:`\tilde A = A + I` of the graph ``edge_index``; with :math:`E` its ones among
    :math:`N^2` entries, edges are up-weighted by :math:`w = (N^2 - E)/E` and the mean is scaled by
    :math:`c = N^2 / (2 (N^2 - E))`:

    .. math::
        -\frac{c}{N^2} \sum_{i,j} \left[ w \tilde A_{ij} \log \sigma(z_i^\top z_j)
            + (1 - \tilde A_{ij}) \log (1 - \sigma(z_i^\top z_j)) \right]

    Shapes: ``z`` :math:`(N, d)`, ``edge_index`` :math:`(2, E)`; output a scalar.
    """
    n = z.size(0)
    target = torch.eye(n, device=z.device, dtype=z.dtype)  # (N, N): A + I
    target[edge_index[0], edge_index[1]] = 1.0
    ones = target.sum()
    total = float(n * n)
    pos_weight = (total - ones) / ones
    norm = total / (2 * (total - ones))
    logits = z @ z.T  # (N, N)
    return norm * F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)


class GraphAutoencoder(nn.Module):
    r"""GAE or VGAE (Kipf & Welling 2016): a two-layer GCN encoder and the inner-product decoder.

    ``forward`` returns the node latents :math:`Z` (sampled in training mode for the VGAE, its
    mean :math:`\mu` in eval mode); :meth:`loss` is the objective above for given positive and
    negative pairs; :meth:`score` the decoder's logits :math:`z_i^\top z_j` of node pairs.

    Args:
        num_node_features: input width :math:`F`.
        hidden: first GCN layer's width (default 32, as in the paper).
        latent: latent width :math:`d` (default 16, as in the paper).
        variational: VGAE (True, default) or GAE (False).
        cached: normalise the adjacency once and reuse it (one fixed graph; default False).
        recon: ``sampled`` (PyG's ``recon_loss`` on the given positive and negative pairs, default)
            or ``full`` (the paper's weighted cross-entropy over all :math:`N^2` pairs, :func:`full_recon_loss`).

    Shapes:
        input a PyG ``Data`` with ``x`` :math:`(N, F)` and ``edge_index`` :math:`(2, E)`;
        output :math:`Z` :math:`(N, d)`.
    """

    def __init__(
        self,
        num_node_features: int,
        hidden: int = 32,
        latent: int = 16,
        variational: bool = True,
        cached: bool = False,
        recon: str = "sampled",
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GAE, VGAE

        if recon not in RECONS:
            raise UserError(f"model.args.recon must be one of {', '.join(RECONS)}, got '{recon}'.")
        self.recon = recon
        self.num_node_features = num_node_features
        self.variational = variational
        encoder = GCNEncoder(num_node_features, hidden, latent, variational, cached)
        self.ae = VGAE(encoder) if variational else GAE(encoder)

    def forward(self, data: Any) -> Tensor:
        return self.ae.encode(data.x, data.edge_index)  # (N, d)

    def forward_features(self, data: Any) -> Tensor:
        """The deterministic node embeddings :math:`\\mu` :math:`(N, d)` (the posterior means of the VGAE)."""
        out = self.ae.encoder(data.x, data.edge_index)
        return out[0] if isinstance(out, tuple) else out

    def score(self, z: Tensor, pairs: Tensor) -> Tensor:
        """Logits :math:`z_i^\\top z_j` :math:`(K,)` of the node pairs ``pairs`` :math:`(2, K)`."""
        return self.ae.decoder(z, pairs, sigmoid=False)

    def loss(
        self, z: Tensor, pos: Tensor, neg: Tensor, edge_index: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of the module docstring for latents ``z`` from the last ``forward``: ``(loss, {recon, kl})``.

        With ``recon="full"`` the reconstruction is :func:`full_recon_loss` over the graph ``edge_index``
        (the training edges) and ``pos``, ``neg`` are not used.
        """
        if self.recon == "full":
            if edge_index is None:
                raise ValueError("recon='full' needs the training graph's edge_index")
            recon = full_recon_loss(z, edge_index)
        else:
            recon = self.ae.recon_loss(z, pos, neg)
        if not self.variational:
            return recon, {"recon": recon.detach()}
        kl = self.ae.kl_loss()  # mean over nodes of KL(q(z_i) || N(0, I)), from the last encode
        return recon + kl / z.size(0), {"recon": recon.detach(), "kl": kl.detach()}

    def example_input(self, batch_size: int = 2) -> tuple[Any, ...]:
        """One ring graph of ``max(3, batch_size)`` nodes with random features."""
        from archzoo.models.gnn import _ring

        return (_ring(max(3, batch_size), self.num_node_features, torch.Generator().manual_seed(0)),)


ARGS = ("num_node_features", "hidden", "latent", "cached", "recon")


@register_model("vgae")
@variant(GraphAutoencoder, ARGS)
def vgae(**kwargs: Any) -> GraphAutoencoder:
    """Kipf & Welling's variational graph autoencoder (GCN 32-16 encoder, inner-product decoder)."""
    return GraphAutoencoder(variational=True, **kwargs)


@register_model("gae")
@variant(GraphAutoencoder, ARGS)
def gae(**kwargs: Any) -> GraphAutoencoder:
    """Kipf & Welling's (non-variational) graph autoencoder (GCN 32-16 encoder, inner-product decoder)."""
    return GraphAutoencoder(variational=False, **kwargs)
