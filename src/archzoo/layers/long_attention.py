r"""Attention kernels for long sequences, registered beside ``sdpa`` and ``manual`` in :data:`archzoo.layers.attention.ATTENTION`.

Each is an :class:`~archzoo.layers.attention.AttentionKernel`: it takes per-head ``q, k, v``
:math:`(B, h, T, d)` and the boolean mask of :class:`~archzoo.layers.attention.MultiHeadAttention`
(true where attending is allowed) and returns the output :math:`(B, h, T, d)`. Pick one with
``MultiHeadAttention(..., attention="chunked" | "linformer" | "performer" | "lsh")`` and pass its
own options as ``attention_options``.

* ``chunked``: exact softmax attention computed a block of queries against a block of keys at a
  time with a running softmax; memory :math:`O(T c)` instead of :math:`O(T S)`.
* ``linformer`` (Wang et al. 2020): keys and values projected along the sequence axis to
  :math:`k` rows; time and memory :math:`O(T k)`.
* ``performer`` (Choromanski et al. 2021): softmax kernel replaced by positive orthogonal
  random features; time and memory :math:`O(T m d)`.
* ``lsh`` (Kitaev et al. 2020): shared-QK attention inside buckets of an angular LSH; time and
  memory :math:`O(T c)` per hashing round.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from archzoo.errors import UserError
from archzoo.layers.attention import AttentionKernel, register_attention

#: Seed of the fixed random features (Performer) and rotations (LSH): the same in every run.
KERNEL_SEED = 0


def _as4d(mask: Tensor | None) -> Tensor | None:
    """The mask with leading singleton dimensions up to :math:`(\\cdot, \\cdot, \\cdot, \\cdot)`."""
    if mask is None:
        return None
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    return mask


def _key_mask(mask: Tensor | None, name: str, b: int, h: int, s: int) -> Tensor | None:
    """A query-independent mask as :math:`(B, h, S)` (true at real keys); a per-query mask is refused."""
    m = _as4d(mask)
    if m is None:
        return None
    if m.shape[-2] != 1:
        raise UserError(f"Attention '{name}' takes only padding (per-key) masks, not a per-query attention mask.")
    return m[..., 0, :].expand(b, h, s)  # (B, h, S)


# ----------------------------------------------------------------------------- chunked (exact)


def _chunk_rows(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    causal: bool,
    dropout: float,
    start: int,
    chunk: int,
    with_lse: bool = False,
) -> Any:
    r"""Attention of the query block ``q`` (its first row at query position ``start`` of the
    bottom-right aligned causal frame) over all keys, a key block at a time with a running softmax.

    Returns the output :math:`(B, h, T_c, d_v)` and, with ``with_lse``, each row's log-normaliser
    :math:`(B, h, T_c, 1)` (:math:`+\infty` for a row with no key, so that its recomputed weights are 0).
    """
    tq, s = q.shape[-2], k.shape[-2]
    scale = q.shape[-1] ** -0.5
    b, h = q.shape[0], q.shape[1]
    row_max = q.new_full((b, h, tq, 1), float("-inf"))  # running max m
    row_sum = q.new_zeros(b, h, tq, 1)  # running sum l of exp(score - m)
    acc = q.new_zeros(b, h, tq, v.shape[-1])  # running sum of exp(score - m) v
    last = s if not causal else min(s, start + tq)  # keys past the block's last query are never seen
    qpos = torch.arange(start, start + tq, device=q.device)[:, None]  # (Tq, 1) positions in the key frame
    for j0 in range(0, last, chunk):
        j1 = min(j0 + chunk, s)
        scores = _block_scores(q, k[:, :, j0:j1], mask, causal, qpos, start, j0, scale)  # (B, h, Tq, c)
        new_max = torch.maximum(row_max, scores.amax(-1, keepdim=True))  # (B, h, Tq, 1)
        safe = new_max.masked_fill(new_max == float("-inf"), 0.0)  # rows with no key yet stay at zero
        p = torch.exp(scores - safe)  # (B, h, Tq, c)
        corr = torch.exp(row_max - safe)  # rescales what was accumulated under the old max
        row_sum = row_sum * corr + p.sum(-1, keepdim=True)
        if dropout > 0:
            p = F.dropout(p, dropout)  # dropout of softmax(.) = dropout of exp(.) / l
        acc = acc * corr + p @ v[:, :, j0:j1]  # (B, h, Tq, d_v)
        row_max = new_max
    out = acc / row_sum.clamp_min(torch.finfo(acc.dtype).tiny)  # a row with no key gives 0, not NaN
    if not with_lse:
        return out
    lse = (row_max + row_sum.log()).masked_fill(row_sum == 0, float("inf"))  # (B, h, Tq, 1)
    return out, lse


def _block_scores(
    q: Tensor, kb: Tensor, mask: Tensor | None, causal: bool, qpos: Tensor, start: int, j0: int, scale: float
) -> Tensor:
    """Masked scores of a query block against the key block starting at ``j0``, :math:`(B, h, T_c, c)`."""
    scores = (q @ kb.transpose(-2, -1)) * scale  # (B, h, Tc, c)
    j1 = j0 + kb.shape[-2]
    if mask is not None:
        m = mask[..., j0:j1] if mask.shape[-1] != 1 else mask
        scores = scores.masked_fill(~m, float("-inf"))
    if causal and j1 - 1 > start:  # some key of the block lies after the block's first query
        allowed = torch.arange(j0, j1, device=q.device)[None, :] <= qpos  # (Tc, c)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores


class _BlockwiseAttention(torch.autograd.Function):
    r"""Exact attention forward and backward, a query block against a key block at a time.

    The forward keeps only the output and each query's log-normaliser :math:`L_i = m_i + \log l_i`;
    the backward recomputes :math:`P = e^{S - L}` block by block and uses
    :math:`dV = P^\top dO`, :math:`dP = dO\,V^\top`, :math:`dS = P \odot (dP - \mathrm{rowsum}(dO \odot O))`,
    :math:`dQ = dS\,K/\sqrt d`, :math:`dK = dS^\top Q/\sqrt d` (the flash-attention backward), so
    training holds :math:`O(T c)` scores too. No dropout (that path goes through autograd).
    """

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, offset, chunk):  # type: ignore[no-untyped-def]
        t = q.shape[-2]
        outs, lses = [], []
        for i0 in range(0, t, chunk):
            i1 = min(i0 + chunk, t)
            rows = None if mask is None else (mask if mask.shape[-2] == 1 else mask[:, :, i0:i1])
            o, lse = _chunk_rows(q[:, :, i0:i1], k, v, rows, causal, 0.0, i0 + offset, chunk, with_lse=True)
            outs.append(o)
            lses.append(lse)
        out, lse = torch.cat(outs, -2), torch.cat(lses, -2)  # (B, h, T, d_v), (B, h, T, 1)
        ctx.save_for_backward(q, k, v, out, lse, *(() if mask is None else (mask,)))
        ctx.causal, ctx.offset, ctx.chunk, ctx.has_mask = causal, offset, chunk, mask is not None
        return out

    @staticmethod
    def backward(ctx, dout):  # type: ignore[no-untyped-def]
        q, k, v, out, lse, *rest = ctx.saved_tensors
        mask = rest[0] if ctx.has_mask else None
        chunk, t, s = ctx.chunk, q.shape[-2], k.shape[-2]
        scale = q.shape[-1] ** -0.5
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        delta = (dout * out).sum(-1, keepdim=True)  # (B, h, T, 1)
        for i0 in range(0, t, chunk):
            i1 = min(i0 + chunk, t)
            qi, doi, li, di = q[:, :, i0:i1], dout[:, :, i0:i1], lse[:, :, i0:i1], delta[:, :, i0:i1]
            rows = None if mask is None else (mask if mask.shape[-2] == 1 else mask[:, :, i0:i1])
            start = i0 + ctx.offset
            qpos = torch.arange(start, start + (i1 - i0), device=q.device)[:, None]
            last = s if not ctx.causal else min(s, start + (i1 - i0))
            for j0 in range(0, last, chunk):
                j1 = min(j0 + chunk, s)
                p = torch.exp(
                    _block_scores(qi, k[:, :, j0:j1], rows, ctx.causal, qpos, start, j0, scale) - li
                )  # (B, h, Tc, c)
                dv[:, :, j0:j1] += p.transpose(-2, -1) @ doi
                ds = p * (doi @ v[:, :, j0:j1].transpose(-2, -1) - di)  # (B, h, Tc, c)
                dq[:, :, i0:i1] += (ds @ k[:, :, j0:j1]) * scale
                dk[:, :, j0:j1] += (ds.transpose(-2, -1) @ qi) * scale
        return dq, dk, dv, None, None, None, None


@register_attention("chunked")
class ChunkedAttention(AttentionKernel):
    r"""Exact softmax attention over blocks of ``chunk`` queries and keys (blockwise attention with an
    online softmax, Milakov & Gimelshein 2018, https://arxiv.org/abs/1805.02867; Rabe & Staats 2021,
    https://arxiv.org/abs/2112.05682).

    For a block of queries and the key blocks :math:`K_j, V_j` in turn, with :math:`S_j = Q K_j^\top/\sqrt d + M_j`:

    .. math::
        m \leftarrow \max(m, \max_{\text{row}} S_j), \quad
        l \leftarrow l\,e^{m_{\text{old}} - m} + \textstyle\sum_{\text{row}} e^{S_j - m}, \quad
        a \leftarrow a\,e^{m_{\text{old}} - m} + e^{S_j - m} V_j, \qquad
        \mathrm{out} = a / l,

    which equals :math:`\mathrm{softmax}(QK^\top/\sqrt d + M)V` while holding only a
    :math:`(T_c, c)` block of scores. Causal attention skips the key blocks after a query block.
    Without dropout the backward pass is blockwise too (:class:`_BlockwiseAttention`: the
    flash-attention backward from the saved output and log-normalisers), so training memory is
    :math:`O(T c + T d)`. With attention dropout each query block goes through autograd instead
    (with ``checkpoint``, recomputed in the backward pass); that path is exact, but in one measurement
    (4 heads of 64, :math:`T` = 4096, chunk 256) it peaked at ~0.9 GB of RSS against ~45 MB for the
    blockwise backward, so train long sequences without attention dropout. A query with no allowed key gives 0 (the
    written-out softmax gives NaN there).

    Args:
        heads, head_dim, max_len: as :class:`~archzoo.layers.attention.AttentionKernel`.
        chunk: block size :math:`c` for queries and keys (default 256).
        checkpoint: with dropout, recompute each query block in the backward pass (default True).
    """

    exact = True
    supports_cache = True

    def __init__(
        self, heads: int, head_dim: int, max_len: int | None = None, chunk: int = 256, checkpoint: bool = True
    ):
        super().__init__(heads, head_dim, max_len)
        if chunk < 1:
            raise UserError(f"attention_options.chunk must be positive, got {chunk}.")
        self.chunk, self.checkpoint = chunk, checkpoint

    def forward(self, q, k, v, mask, causal, dropout):  # type: ignore[no-untyped-def]
        t, s = q.shape[-2], k.shape[-2]
        m = _as4d(mask)
        if dropout == 0:  # forward and backward blockwise: O(T c) memory in training too
            return _BlockwiseAttention.apply(q, k, v, m, causal, s - t, self.chunk), None
        outs = []  # with dropout: autograd through each query block, recomputed in the backward pass
        for i0 in range(0, t, self.chunk):
            i1 = min(i0 + self.chunk, t)
            rows = None if m is None else (m if m.shape[-2] == 1 else m[:, :, i0:i1])  # (.., Tc or 1, S or 1)
            args = (q[:, :, i0:i1], k, v, rows, causal, dropout, i0 + s - t, self.chunk)
            if self.checkpoint and torch.is_grad_enabled():
                outs.append(checkpoint(_chunk_rows, *args, use_reentrant=False))
            else:
                outs.append(_chunk_rows(*args))
        return torch.cat(outs, dim=-2), None  # (B, h, T, d_v)


# ----------------------------------------------------------------------------- Linformer


@register_attention("linformer")
class LinformerAttention(AttentionKernel):
    r"""Linformer attention (Wang et al. 2020, https://arxiv.org/abs/2006.04768): keys and values
    projected along the sequence axis by learned :math:`E, F \in \mathbb R^{k \times n}`,

    .. math::
        \mathrm{out} = \mathrm{softmax}\!\big(Q\,(E_{:, :S} K)^\top / \sqrt d\big)\,(F_{:, :S} V),

    :math:`O(T k)` time and memory instead of :math:`O(T S)`. A sequence shorter than
    ``max_len`` (:math:`n`) uses the first :math:`S` columns of :math:`E, F`; padding keys and
    values are zeroed before the projection. :math:`E, F` are shared by the heads (the paper's
    headwise sharing) and initialised :math:`\mathcal N(0, 1/k)`. Causal attention is not defined
    (each projected row mixes all positions), nor decoding with a cache; a per-query mask is refused.

    Args:
        heads, head_dim: as :class:`~archzoo.layers.attention.AttentionKernel`.
        max_len: :math:`n`, the longest sequence (required).
        proj_dim: :math:`k`, projected length (default 256).
    """

    exact = False
    supports_cache = False

    def __init__(self, heads: int, head_dim: int, max_len: int | None = None, proj_dim: int = 256):
        super().__init__(heads, head_dim, max_len)
        if max_len is None:
            raise UserError("Attention 'linformer' needs max_len (its projections have one column per position).")
        if proj_dim < 1:
            raise UserError(f"attention_options.proj_dim must be positive, got {proj_dim}.")
        self.proj_dim = proj_dim
        self.E = nn.Parameter(torch.randn(proj_dim, max_len) / math.sqrt(proj_dim))
        self.F = nn.Parameter(torch.randn(proj_dim, max_len) / math.sqrt(proj_dim))

    def forward(self, q, k, v, mask, causal, dropout):  # type: ignore[no-untyped-def]
        if causal:
            raise UserError(
                "Attention 'linformer' is not defined for causal attention (its projections mix all positions)."
            )
        b, h, s = k.shape[0], k.shape[1], k.shape[-2]
        assert self.max_len is not None
        if s > self.max_len:
            raise UserError(f"The sequence has {s} positions, past linformer's max_len {self.max_len}.")
        km = _key_mask(mask, "linformer", b, h, s)
        if km is not None:
            k, v = k * km[..., None], v * km[..., None]  # padding keys and values zeroed
        kp = self.E[:, :s] @ k  # (k, S) @ (B, h, S, d) -> (B, h, k, d)
        vp = self.F[:, :s] @ v  # (B, h, k, d_v)
        w = ((q @ kp.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1)  # (B, h, T, k)
        if dropout > 0:
            w = F.dropout(w, dropout)
        return w @ vp, None  # (B, h, T, d_v)


# ----------------------------------------------------------------------------- Performer


def orthogonal_features(m: int, d: int, generator: torch.Generator) -> Tensor:
    r""":math:`m` random feature directions :math:`\omega_i \in \mathbb R^d` :math:`(m, d)`: blocks of
    :math:`d` orthogonal rows (QR of a Gaussian matrix), each row rescaled to the norm of a Gaussian
    vector so that marginally :math:`\omega_i \sim \mathcal N(0, I_d)` (Choromanski et al. 2021, ORF)."""
    blocks = []
    for _ in range(math.ceil(m / d)):  # a few blocks, not positions
        g = torch.randn(d, d, generator=generator)
        qmat, _ = torch.linalg.qr(g)  # (d, d), orthonormal columns
        blocks.append(qmat.T)
    w = torch.cat(blocks)[:m]  # (m, d) rows orthonormal within a block
    norms = torch.randn(m, d, generator=generator).norm(dim=1, keepdim=True)  # chi(d) distributed
    return w * norms


@register_attention("performer")
class PerformerAttention(AttentionKernel):
    r"""Performer attention with FAVOR+ (Choromanski et al. 2021, https://arxiv.org/abs/2009.14794):
    the softmax kernel :math:`e^{q^\top k}` replaced by positive random features,

    .. math::
        \phi(x) = \tfrac{1}{\sqrt m} \exp\!\big(\omega_i^\top x - \lVert x\rVert^2/2\big)_{i=1..m},
        \qquad \mathrm{out} = \frac{\phi(Q')\,(\phi(K')^\top V)}{\phi(Q')\,(\phi(K')^\top \mathbf 1)},

    with :math:`Q' = Q/d^{1/4}`, :math:`K' = K/d^{1/4}` (so :math:`q'^\top k' = q^\top k/\sqrt d`), and
    :math:`\omega` orthogonal random features; :math:`\mathbb E[\phi(q)^\top\phi(k)] = e^{q^\top k}`.
    Time and memory :math:`O(T m d)`. Padding keys are zeroed in :math:`\phi(K')`. For stability
    :math:`\phi(Q')` drops the max over its features per query and :math:`\phi(K')` the max over
    all keys and features (both cancel in the ratio).

    The features are a fixed buffer drawn from :data:`KERNEL_SEED` at construction, **not
    persistent** (not in the ``state_dict``): they are rebuilt identically from the seed, so
    checkpoints do not depend on the kernel and hold no random draws; there is no redrawing during
    training. Non-causal only (causal -> :class:`~archzoo.errors.UserError`); no KV cache; no
    attention weights, so attention dropout is refused.

    Args:
        heads, head_dim, max_len: as :class:`~archzoo.layers.attention.AttentionKernel`.
        features: :math:`m`, number of random features (default 256).
    """

    exact = False
    supports_cache = False

    def __init__(self, heads: int, head_dim: int, max_len: int | None = None, features: int = 256):
        super().__init__(heads, head_dim, max_len)
        if features < 1:
            raise UserError(f"attention_options.features must be positive, got {features}.")
        self.features = features
        g = torch.Generator().manual_seed(KERNEL_SEED)
        self.register_buffer("omega", orthogonal_features(features, head_dim, g), persistent=False)

    def _phi(self, x: Tensor, is_query: bool, key_mask: Tensor | None = None) -> Tensor:
        x = x * x.shape[-1] ** -0.25
        proj = x @ self.omega.T  # (B, h, T, m)
        sq = 0.5 * (x * x).sum(-1, keepdim=True)  # (B, h, T, 1)
        if is_query:
            stab = proj.amax(-1, keepdim=True).detach()  # per query: cancels in the ratio
        else:  # one constant for all real keys of a head
            real = proj if key_mask is None else proj.masked_fill(~key_mask[..., None], float("-inf"))
            stab = real.amax((-2, -1), keepdim=True).detach().clamp_min(-1e4)
        phi = (torch.exp(proj - sq - stab) + 1e-6) / math.sqrt(self.features)
        return phi if key_mask is None else phi * key_mask[..., None]  # padding keys contribute nothing

    def forward(self, q, k, v, mask, causal, dropout):  # type: ignore[no-untyped-def]
        if causal:
            raise UserError("Attention 'performer' here is non-causal only.")
        if dropout > 0:
            raise UserError(
                "Attention 'performer' has no attention weights to drop out; set the attention dropout to 0."
            )
        b, h, s = k.shape[0], k.shape[1], k.shape[-2]
        km = _key_mask(mask, "performer", b, h, s)
        qf, kf = self._phi(q, True), self._phi(k, False, km)  # (B, h, T, m), (B, h, S, m)
        kv = kf.transpose(-2, -1) @ v  # (B, h, m, d_v)
        den = qf @ kf.sum(-2, keepdim=True).transpose(-2, -1)  # (B, h, T, 1)
        return (qf @ kv) / den, None  # (B, h, T, d_v)


# ----------------------------------------------------------------------------- LSH (Reformer)


@register_attention("lsh")
class LSHAttention(AttentionKernel):
    r"""LSH attention of the Reformer (Kitaev et al. 2020, https://arxiv.org/abs/2001.04451).

    Keys are shared with queries, :math:`k_j = q_j / \lVert q_j\rVert` (the ``k`` given to the kernel
    is not used). Each of ``n_rounds`` rounds hashes every position by a random rotation
    :math:`R \in \mathbb R^{d \times b/2}`, :math:`h(x) = \arg\max [xR; -xR]` (:math:`b` buckets),
    sorts positions by (bucket, position), cuts the sorted sequence into chunks of :math:`c` and
    lets each query attend the keys of its own and the previous chunk that share its bucket:

    .. math::
        o^{(r)}_i = \sum_{j \in P^{(r)}_i} \frac{e^{s_{ij}}}{z^{(r)}_i} v_j, \quad
        s_{ij} = q_i^\top k_j / \sqrt d, \qquad
        o_i = \sum_r \frac{z^{(r)}_i}{\sum_{r'} z^{(r')}_i}\, o^{(r)}_i .

    A query does not attend its own position unless it has no other key (its score is set to
    :math:`-10^5` rather than :math:`-\infty`); padding keys and, with ``causal``, later positions
    are masked. Cost per round :math:`O(T c)` plus the sort. With ``n_buckets=1`` and
    ``chunk >= T`` it equals exact shared-QK softmax attention over all other real positions,
    :math:`\mathrm{softmax}_{j \ne i}(q_i^\top \hat q_j / \sqrt d)\,V`. A key found in several
    rounds is counted in each. The rotations are a fixed non-persistent buffer drawn from
    :data:`KERNEL_SEED` (the paper redraws them at every step). Self-attention only; no KV cache.

    Args:
        heads, head_dim, max_len: as :class:`~archzoo.layers.attention.AttentionKernel`.
        n_buckets: :math:`b`, even or 1 (default 32).
        chunk: :math:`c`, chunk length (default 64).
        n_rounds: hashing rounds (default 2).
    """

    exact = False
    supports_cache = False

    def __init__(
        self,
        heads: int,
        head_dim: int,
        max_len: int | None = None,
        n_buckets: int = 32,
        chunk: int = 64,
        n_rounds: int = 2,
    ):
        super().__init__(heads, head_dim, max_len)
        if n_buckets < 1 or (n_buckets > 1 and n_buckets % 2):
            raise UserError(f"attention_options.n_buckets must be 1 or even, got {n_buckets}.")
        if chunk < 1 or n_rounds < 1:
            raise UserError(f"attention_options.chunk and n_rounds must be positive, got {chunk} and {n_rounds}.")
        self.n_buckets, self.chunk, self.n_rounds = n_buckets, chunk, n_rounds
        g = torch.Generator().manual_seed(KERNEL_SEED)
        rot = torch.randn(n_rounds, head_dim, max(n_buckets // 2, 1), generator=g)  # (R, d, b/2)
        self.register_buffer("rotations", rot, persistent=False)

    def _buckets(self, kn: Tensor) -> Tensor:
        """Bucket of every position in every round, :math:`(R, B, h, T)`."""
        if self.n_buckets == 1:
            return kn.new_zeros((self.n_rounds, *kn.shape[:-1]), dtype=torch.long)
        rotated = torch.einsum("bhtd,rdn->rbhtn", kn, self.rotations)  # (R, B, h, T, b/2)
        return torch.cat([rotated, -rotated], -1).argmax(-1)  # (R, B, h, T)

    def forward(self, q, k, v, mask, causal, dropout):  # type: ignore[no-untyped-def]
        b, h, t, d = q.shape
        if k.shape[-2] != t:
            raise UserError("Attention 'lsh' shares queries and keys: it is self-attention only.")
        km = _key_mask(mask, "lsh", b, h, t)  # (B, h, T) or None
        kn = F.normalize(q, dim=-1)  # shared-QK keys
        c = min(self.chunk, t)
        n = math.ceil(t / c)
        pad = n * c - t
        pos = torch.arange(t, device=q.device)
        buckets = self._buckets(kn.detach())  # (R, B, h, T)
        order = (buckets * t + pos).argsort(-1)  # (R, B, h, T): sort by bucket, then position
        if pad:  # dummy positions at the end (index t) are masked as keys
            order = F.pad(order, (0, pad), value=t)
        qx = F.pad(q, (0, 0, 0, 1))  # (B, h, T+1, d): row t is the dummy
        kx, vx = F.pad(kn, (0, 0, 0, 1)), F.pad(v, (0, 0, 0, 1))
        real = torch.ones(b, h, t, dtype=torch.bool, device=q.device) if km is None else km
        real = F.pad(real, (0, 1), value=False)  # (B, h, T+1)
        bx = F.pad(buckets, (0, 1), value=-1)  # (R, B, h, T+1)
        posx = F.pad(pos, (0, 1), value=t)  # (T+1,)

        def gather(x: Tensor) -> Tensor:  # (B, h, T+1, e) -> (R, B, h, n, c, e) in sorted order
            idx = order[..., None].expand(*order.shape, x.shape[-1])
            return x.unsqueeze(0).expand(self.n_rounds, *x.shape).gather(-2, idx).view(self.n_rounds, b, h, n, c, -1)

        sq, sk, sv = gather(qx), gather(kx), gather(vx)  # (R, B, h, n, c, d)
        s_pos = posx[order].view(self.n_rounds, b, h, n, c)  # (R, B, h, n, c)
        s_bkt = bx.gather(-1, order).view(self.n_rounds, b, h, n, c)
        s_real = real.unsqueeze(0).expand(self.n_rounds, *real.shape).gather(-1, order).view(self.n_rounds, b, h, n, c)

        def look_back(x: Tensor) -> Tensor:  # each chunk with the previous one (cyclically), when there is one
            if n == 1:
                return x
            return torch.cat([x, x.roll(1, dims=3)], dim=4)  # (R, B, h, n, 2c, ...)

        ck, cv, kpos, kbkt, kreal = look_back(sk), look_back(sv), look_back(s_pos), look_back(s_bkt), look_back(s_real)
        scores = (sq @ ck.transpose(-2, -1)) * d**-0.5  # (R, B, h, n, c, c or 2c)
        allowed = kreal[..., None, :] & (kbkt[..., None, :] == s_bkt[..., :, None])
        if causal:
            allowed = allowed & (kpos[..., None, :] <= s_pos[..., :, None])
        scores = scores.masked_fill(~allowed, float("-inf"))
        scores = scores.masked_fill(kpos[..., None, :] == s_pos[..., :, None], -1e5)  # self only when alone
        lse = scores.logsumexp(-1, keepdim=True)  # (R, B, h, n, c, 1)
        w = torch.exp(scores - lse)
        if dropout > 0:
            w = F.dropout(w, dropout)
        o = (w @ cv).view(self.n_rounds, b, h, n * c, -1)  # (R, B, h, n c, d_v) in sorted order
        lse = lse.view(self.n_rounds, b, h, n * c, 1)
        # back to position order: scatter each sorted slot to its position (dummies go to row t)
        out = o.new_zeros(self.n_rounds, b, h, t + 1, o.shape[-1])
        out = out.scatter(-2, order[..., None].expand_as(o), o)[..., :t, :]  # (R, B, h, T, d_v)
        z = lse.new_zeros(self.n_rounds, b, h, t + 1, 1).scatter(-2, order[..., None], lse)[..., :t, :]
        if self.n_rounds == 1:
            return out[0], None
        return (out * z.softmax(0)).sum(0), None  # rounds weighted by their share of the normaliser
