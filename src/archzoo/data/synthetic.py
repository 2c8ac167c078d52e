"""Synthetic sequence tasks, generated from a fixed seed: no download, the same data everywhere.

``parity_sequences`` draws variable-length sequences of the tokens 1 and 2
(0 is padding) and labels each by a rule over its tokens, so a recurrent
classifier must read the whole sequence and ignore the padding. ``long_match`` draws
sequences of 2048 tokens labelled by whether the first token comes back in the second half,
the long-range test of the long-sequence attention kernels.
"""

from __future__ import annotations

import torch

from archzoo.data.splits import DataBundle, PaddedSequences
from archzoo.errors import UserError
from archzoo.registry import register_dataset

#: The seed of every synthetic corpus: the data do not change with the run's seed.
DATA_SEED = 0

RULES = ("majority", "parity")


def _label(seq: torch.Tensor, rule: str) -> int:
    twos = int((seq == 2).sum())
    if rule == "parity":
        return twos % 2
    return int(2 * twos > len(seq))  # majority of 2s; odd lengths only, so there is no tie


@register_dataset("parity_sequences")
def parity_sequences(
    n: int = 2000,
    min_len: int = 5,
    max_len: int = 30,
    rule: str = "majority",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    bucket: bool = False,
) -> DataBundle:
    """Sequences of 1s and 2s, classified by how many 2s they hold.

    ``rule="majority"`` (the default, learnt by a small GRU in a few epochs): label 1 when
    more than half the tokens are 2 (lengths are odd, so there is no tie).
    ``rule="parity"``: label 1 when the number of 2s is odd, the classic hard case for
    gradient descent through a recurrence (a long chain of XORs).

    Args:
        n: number of sequences over all splits (default 2000).
        min_len: shortest length (default 5).
        max_len: longest length (default 30).
        rule: ``"majority"`` or ``"parity"``.
        val_fraction: share of the sequences for validation (default 0.1).
        test_fraction: share for the test split (default 0.1).
        bucket: batch sequences of similar length together in training (less padding).
    """
    if rule not in RULES:
        raise UserError(f"data.args.rule must be one of {', '.join(RULES)}, got '{rule}'.")
    if not 1 <= min_len <= max_len:
        raise UserError(f"parity_sequences needs 1 <= min_len <= max_len, got {min_len} and {max_len}.")
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    if min(n_val, n_test, n - n_val - n_test) < 1:
        raise UserError(f"parity_sequences: {n} sequences leave an empty split; raise data.args.n.")
    g = torch.Generator().manual_seed(DATA_SEED)
    choices = torch.arange(min_len, max_len + 1)
    if rule == "majority":
        choices = choices[choices % 2 == 1]  # odd lengths only: a tie has no majority
        if len(choices) == 0:
            raise UserError(f"rule 'majority' needs an odd length in [{min_len}, {max_len}].")
    lengths = choices[torch.randint(0, len(choices), (n,), generator=g)]
    seqs = [torch.randint(1, 3, (int(k),), generator=g) for k in lengths]
    labels = torch.tensor([_label(s, rule) for s in seqs])
    cut_test, cut_val = n - n_test, n - n_test - n_val
    info = {
        "vocab_size": 3,
        "pad_id": 0,
        "num_classes": 2,
        "itos": ["<pad>", "1", "2"],
        "classes": ["0", "1"] if rule == "parity" else ["more 1s", "more 2s"],
        "kind": "sequence",
        "rule": rule,
    }
    return DataBundle(
        PaddedSequences(seqs[:cut_val], labels[:cut_val], pad_id=0, bucket=bucket),
        PaddedSequences(seqs[cut_val:cut_test], labels[cut_val:cut_test], pad_id=0),
        PaddedSequences(seqs[cut_test:], labels[cut_test:], pad_id=0),
        info,
    )


@register_dataset("noisy_sine")
def noisy_sine(
    length: int = 1200,
    period: float = 50.0,
    noise: float = 0.1,
    input_len: int = 24,
    horizon: int = 1,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> DataBundle:
    r"""A noisy sine :math:`s_t = \sin(2\pi t / P) + \varepsilon_t`, :math:`\varepsilon_t \sim \mathcal N(0, \sigma^2)`,
    forecast ``horizon`` steps ahead from windows of ``input_len`` values.

    The series is split chronologically (:func:`~archzoo.data.splits.chronological_spans`): the
    last ``test_fraction`` of the targets tests, the ``val_fraction`` before them validates, and
    no window's target crosses into a later span. Values are standardised with the training
    span's mean and standard deviation alone; the regression task reports metrics in the
    original units through ``target_mean``/``target_std``.

    Args:
        length: number of time steps (default 1200).
        period: :math:`P` in steps (default 50).
        noise: :math:`\sigma` (default 0.1).
        input_len: window of past values a forecast sees (default 24).
        horizon: steps ahead, each a target (default 1).
        val_fraction: share of the series in the validation span (default 0.15).
        test_fraction: share in the test span (default 0.15).

    Shapes:
        batches ``(x, y)``: :math:`(B, \text{input\_len})` and :math:`(B, \text{horizon})`.
    """
    from archzoo.data.splits import SeriesWindows, chronological_spans

    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError("data.val_fraction and data.args.test_fraction must be in (0, 1) and sum below 1.")
    g = torch.Generator().manual_seed(DATA_SEED)
    t = torch.arange(length, dtype=torch.float32)
    s = torch.sin(2 * torch.pi * t / period) + noise * torch.randn(length, generator=g)
    spans = chronological_spans(length, int(length * val_fraction), int(length * test_fraction))
    train_end = spans[0][1]
    mean, std = float(s[:train_end].mean()), float(s[:train_end].std())
    z = (s - mean) / std  # training-span statistics only
    train, val, test = (SeriesWindows(z, input_len, horizon, a, b) for a, b in spans)
    info = {
        "kind": "series",
        "in_features": input_len,
        "out_features": horizon,
        "horizon": horizon,
        "target_mean": mean,
        "target_std": std,
    }
    return DataBundle(train, val, test, info)


@register_dataset("sum_last")
def sum_last(
    n: int = 10000,
    length: int = 20,
    window: int = 10,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> DataBundle:
    r"""Random sequences :math:`x_1..x_L`, :math:`x_t \sim \mathcal N(0, 1)`, each with the target
    :math:`y = \sum_{t=L-w+1}^{L} x_t`, the sum of its last ``window`` values.

    A model that reads the sequence in order must count the steps, ignore all but the last
    :math:`w` values and add those exactly; the target's standard deviation is
    :math:`\sqrt{w}` in theory, and ``info["target_std"]`` holds the training split's own. Targets
    are standardised with the training split's mean and standard deviation; the regression task
    reports its metrics in the original units through ``target_mean``/``target_std``. The
    sequences are drawn once from :data:`DATA_SEED`; the first ``1 - val - test`` share trains.

    Args:
        n: number of sequences over all splits (default 10000).
        length: :math:`L`, values per sequence (default 20).
        window: :math:`w`, how many of the last values are summed (default 10).
        val_fraction: share of the sequences for validation (default 0.1).
        test_fraction: share for the test split (default 0.1).

    Shapes:
        batches ``(x, y)``: :math:`(B, L)` and :math:`(B, 1)` (standardised).
    """
    from archzoo.data.splits import TensorSplit

    if not 1 <= window <= length:
        raise UserError(f"sum_last needs 1 <= window <= length, got window {window} and length {length}.")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError("data.val_fraction and data.args.test_fraction must be in (0, 1) and sum below 1.")
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    if min(n_val, n_test, n - n_val - n_test) < 2:
        raise UserError(f"sum_last: {n} sequences leave a split with fewer than 2; raise data.args.n.")
    g = torch.Generator().manual_seed(DATA_SEED)
    x = torch.randn(n, length, generator=g)  # (N, L)
    y = x[:, -window:].sum(1, keepdim=True)  # (N, 1)
    cut_val, cut_test = n - n_val - n_test, n - n_test
    mean, std = float(y[:cut_val].mean()), float(y[:cut_val].std())
    z = (y - mean) / std  # training-split statistics only
    info = {
        "kind": "sequence",
        "in_features": length,
        "out_features": 1,
        "window": window,
        "target_mean": mean,
        "target_std": std,
    }
    return DataBundle(
        TensorSplit(x[:cut_val], z[:cut_val]),
        TensorSplit(x[cut_val:cut_test], z[cut_val:cut_test]),
        TensorSplit(x[cut_test:], z[cut_test:]),
        info,
    )


@register_dataset("long_match")
def long_match(
    n: int = 2000,
    length: int = 2048,
    vocab: int = 16,
    matches: int = 1,
    rule: str = "match",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> DataBundle:
    r"""Long sequences labelled by a dependency between tokens far apart: does the first token
    appear again in the second half?

    Each sequence :math:`x_1..x_L` holds tokens :math:`1..V-1` (0 is reserved for padding, which
    these equal-length sequences never need). :math:`x_1` and the first half
    :math:`x_2..x_{L/2}` are uniform over all tokens (so :math:`x_1` may recur there: a distractor);
    the second half :math:`x_{L/2+1}..x_L` is uniform over the tokens other than :math:`x_1`, and
    for label 1 ``matches`` distinct positions of it, uniform, are set to :math:`x_1`.

    That relation is second order: no single token predicts the label, so a small encoder trained
    for minutes stays at chance (measured: 50% after 10 epochs at length 256 with full attention).
    ``rule="last"`` is the first-order long-range task: the label is whether the *last* token
    :math:`x_L` lies in the upper half of the ids, and a classifier that reads the *first*
    position (``pool="cls"``) must carry that one token across :math:`L - 1` positions, so it
    measures how precisely an attention kernel retrieves a single distant key. So the label is exactly
    :math:`[x_1 \in \{x_{L/2+1}, \dots, x_L\}]`, carried by a single token up to :math:`L - 1`
    positions from :math:`x_1`: a model must compare the first position with every position of the
    second half and know which half each is in. Each split's labels are balanced to within one
    (in a seeded random order); everything is drawn at once from :data:`DATA_SEED`.

    Args:
        n: number of sequences over all splits (default 2000).
        length: :math:`L`, even, at least 4 (default 2048).
        vocab: :math:`V`, vocabulary size including padding, at least 3 (default 16).
        matches: how many positions of a label-1 second half hold :math:`x_1` (default 1, the
            needle; more make the evidence denser, so a small model learns the task in minutes
            while the label still depends on tokens up to :math:`L - 1` apart).
        rule: ``"match"`` (the default, above) or ``"last"``; ``matches`` applies to ``"match"``.
        val_fraction: share of the sequences for validation (default 0.1).
        test_fraction: share for the test split (default 0.1).

    Shapes:
        batches :class:`~archzoo.data.splits.PaddedBatch` with ``x`` :math:`(B, L)`,
        ``lengths`` :math:`(B,)` (all :math:`L`) and ``y`` :math:`(B,)`.
    """
    if length < 4 or length % 2:
        raise UserError(f"long_match needs an even length of at least 4, got {length}.")
    if vocab < 3:
        raise UserError(f"long_match needs a vocabulary of at least 3 (padding and two tokens), got {vocab}.")
    if rule not in ("match", "last"):
        raise UserError(f"long_match: data.args.rule must be 'match' or 'last', got '{rule}'.")
    if not 1 <= matches <= length // 2:
        raise UserError(
            f"long_match: data.args.matches must be between 1 and half the length {length // 2}, got {matches}."
        )
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError("data.val_fraction and data.args.test_fraction must be in (0, 1) and sum below 1.")
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    if min(n_val, n_test, n - n_val - n_test) < 2:
        raise UserError(f"long_match: {n} sequences leave a split with fewer than 2; raise data.args.n.")
    g = torch.Generator().manual_seed(DATA_SEED)
    half = length // 2
    x = torch.randint(1, vocab, (n, length), generator=g)  # (N, L), first token and first half
    first = x[:, :1]  # (N, 1)
    other = torch.randint(1, vocab - 1, (n, half), generator=g)  # (N, L/2) over V-2 tokens
    x[:, half:] = other + (other >= first).long()  # skip the first token's id: it never occurs there
    cut_val, cut_test = n - n_val - n_test, n - n_test
    labels = torch.empty(n, dtype=torch.long)
    for lo, hi in ((0, cut_val), (cut_val, cut_test), (cut_test, n)):  # each split balanced to within one
        labels[lo:hi] = (torch.arange(hi - lo) % 2)[torch.randperm(hi - lo, generator=g)]
    where = half + torch.rand(n, half, generator=g).argsort(1)[:, :matches]  # (N, matches) distinct positions
    rows = labels.nonzero().squeeze(1)
    if rule == "match":
        x[rows.unsqueeze(1), where[rows]] = first[rows]  # label 1: the first token in the second half
    else:
        lo = (vocab - 1) // 2  # ids 1..lo are the lower half, lo+1..V-1 the upper
        low = torch.randint(1, lo + 1, (n,), generator=g)
        high = torch.randint(lo + 1, vocab, (n,), generator=g)
        x[:, -1] = torch.where(labels.bool(), high, low)  # label 1: the last token is a high id
    seqs = list(x.unbind(0))  # views of one tensor, no copy
    info = {
        "vocab_size": vocab,
        "pad_id": 0,
        "num_classes": 2,
        "max_len": length,
        "itos": ["<pad>", *(str(i) for i in range(1, vocab))],
        "classes": ["absent", "present"] if rule == "match" else ["low", "high"],
        "kind": "sequence",
    }
    return DataBundle(
        PaddedSequences(seqs[:cut_val], labels[:cut_val], pad_id=0),
        PaddedSequences(seqs[cut_val:cut_test], labels[cut_val:cut_test], pad_id=0),
        PaddedSequences(seqs[cut_test:], labels[cut_test:], pad_id=0),
        info,
    )
