r"""Adaptive softmax written out (Grave et al. 2017, https://arxiv.org/abs/1609.04309).

A read-out over a large vocabulary costs :math:`O(V H)` per token. With the ids sorted by
frequency and cut at :math:`c_1 < c_2 < \dots < c_K < V`, the adaptive softmax scores the
:math:`c_1` most frequent words and one entry per tail cluster in a *head*, and each tail
cluster :math:`k` (ids :math:`[c_k, c_{k+1})`) through a projection :math:`P_k` that is
``div_value``:math:`^k` times narrower than :math:`H`:

.. math::
    \log p(w \mid h) = \begin{cases}
        \log \mathrm{softmax}(W_0 h)_w & w < c_1 \\
        \log \mathrm{softmax}(W_0 h)_{c_1 + k - 1} + \log \mathrm{softmax}(W_k P_k h)_{w - c_k}
            & c_k \le w < c_{k+1}
    \end{cases}

Every word belongs to exactly one place, so the probabilities over the vocabulary sum to
one: the perplexity it gives is exact. Training scores a tail only for the tokens that fall
in it. The parameters are named as in :class:`torch.nn.AdaptiveLogSoftmaxWithLoss`
(``head``, ``tail.k.0`` the projection, ``tail.k.1`` the cluster's read-out), so the two
load each other's state_dicts, and a test shows they agree. Unlike torch's module this one
runs under autocast: its matmuls take the autocast dtype (bf16 on CPU), its log-softmaxes
and the NLL stay fp32.

**Tying the shortlist.** With ``tie_shortlist=True`` the head holds only the :math:`K`
cluster rows; the :math:`c_1` shortlist rows are passed in at every call
(``shortlist_weight``), so a language model can share them with the first :math:`c_1`
rows of its input embedding (Press & Wolf 2017's tying, for the frequent words the head
scores; the tail clusters, scored through projections, keep their own weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError


class AdaptiveSoftmax(nn.Module):
    """The adaptive softmax read-out; :meth:`nll` scores targets, :meth:`log_prob` the whole vocabulary.

    Args:
        in_features: input width :math:`H`.
        n_classes: vocabulary size :math:`V`, ids sorted by falling frequency.
        cutoffs: the cluster boundaries :math:`c_1 < \\dots < c_K`, all in :math:`(0, V)`.
        div_value: how much narrower each tail cluster's projection is than the last (default 4).
        tie_shortlist: the shortlist rows are not held here but given to each call (default False).

    Shapes:
        input :math:`(N, H)`; targets :math:`(N,)`; :meth:`nll` :math:`(N,)`,
        :meth:`log_prob` :math:`(N, V)`.
    """

    def __init__(
        self, in_features: int, n_classes: int, cutoffs: list[int], div_value: float = 4.0, tie_shortlist: bool = False
    ) -> None:
        super().__init__()
        cutoffs = [int(c) for c in cutoffs]
        if not cutoffs or any(b <= a for a, b in zip([0, *cutoffs], cutoffs, strict=False)) or cutoffs[-1] >= n_classes:
            raise UserError(
                f"model.args.cutoffs must be increasing, above 0 and below the vocabulary size {n_classes}, got {cutoffs}."
            )
        if div_value < 1:
            raise UserError(f"model.args.div_value must be at least 1, got {div_value}.")
        widths = [int(in_features // div_value ** (k + 1)) for k in range(len(cutoffs))]
        if min(widths) < 1:
            raise UserError(
                f"model.args.div_value={div_value:g} leaves the last of {len(cutoffs)} tail clusters no width "
                f"over {in_features} features; lower div_value or use fewer cutoffs."
            )
        self.in_features, self.n_classes = in_features, n_classes
        self.bounds = [*cutoffs, n_classes]  # cluster k holds ids [bounds[k], bounds[k + 1])
        self.shortlist = cutoffs[0]
        # on the module's device, not built from the list at every call (not in the state_dict)
        self.register_buffer("_bounds", torch.tensor(self.bounds), persistent=False)
        self.tie_shortlist = tie_shortlist
        # tied: only the K cluster rows live here, after the shortlist rows given to each call
        self.head = nn.Linear(in_features, (0 if tie_shortlist else self.shortlist) + len(cutoffs), bias=False)
        self.tail = nn.ModuleList(
            nn.Sequential(nn.Linear(in_features, w, bias=False), nn.Linear(w, hi - lo, bias=False))
            for w, lo, hi in zip(widths, self.bounds[:-1], self.bounds[1:], strict=True)
        )

    def _head(self, x: Tensor, shortlist_weight: Tensor | None) -> Tensor:
        """Log-probabilities of the head's :math:`c_1 + K` entries, :math:`(N, c_1 + K)`, fp32."""
        if self.tie_shortlist != (shortlist_weight is not None):
            raise ValueError("shortlist_weight is needed exactly when the shortlist is tied")
        logits = self.head(x)  # (N, c1 + K), or (N, K) tied
        if shortlist_weight is not None:
            logits = torch.cat([F.linear(x, shortlist_weight.to(logits.dtype)), logits], dim=-1)  # (N, c1 + K)
        return F.log_softmax(logits.float(), dim=-1)

    def nll(self, x: Tensor, target: Tensor, shortlist_weight: Tensor | None = None) -> Tensor:
        """:math:`-\\log p(y_n \\mid x_n)` of each target, :math:`(N,)`, fp32."""
        head = self._head(x, shortlist_weight)  # (N, c1 + K)
        # A shortlist word reads its own head entry; a tail word reads its cluster's entry ...
        cluster = torch.bucketize(target, self._bounds, right=True) - 1
        slot = torch.where(target < self.shortlist, target, self.shortlist + cluster)  # (N,)
        logp = head.gather(1, slot.unsqueeze(1)).squeeze(1)  # (N,)
        # ... plus the word's log-probability within the cluster, for the tokens in it only.
        for k, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
            rows = ((target >= lo) & (target < hi)).nonzero().squeeze(1)  # (n_k,)
            if rows.numel() == 0:
                continue
            within = F.log_softmax(self.tail[k](x.index_select(0, rows)).float(), dim=-1)  # (n_k, hi - lo)
            logp = logp.index_add(
                0, rows, within.gather(1, (target.index_select(0, rows) - lo).unsqueeze(1)).squeeze(1)
            )
        return -logp

    def log_prob(self, x: Tensor, shortlist_weight: Tensor | None = None) -> Tensor:
        """:math:`\\log p(w \\mid x_n)` for every word, :math:`(N, V)`, fp32."""
        head = self._head(x, shortlist_weight)  # (N, c1 + K)
        parts = [head[:, : self.shortlist]]
        for k in range(len(self.tail)):
            within = F.log_softmax(self.tail[k](x).float(), dim=-1)  # (N, cluster size)
            parts.append(head[:, self.shortlist + k : self.shortlist + k + 1] + within)
        return torch.cat(parts, dim=1)  # (N, V)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, n_classes={self.n_classes}, cutoffs={self.bounds[:-1]}"
