"""Tests for the split kinds beyond TensorSplit: token streams, padded sequences, graphs, series windows.

Every kind is checked for the Split promises (protocol, batch count, (seed, epoch) order, resume,
rank slices that interleave to the single-process batch, one pass covering every example once),
then for what is particular to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from archzoo.data.splits import (
    FullGraph,
    GraphBatches,
    PaddedBatch,
    PaddedSequences,
    SeriesWindows,
    Split,
    TensorSplit,
    TokenStream,
    chronological_spans,
    write_tokens,
)
from archzoo.errors import DataError, UserError

N_TOKENS, BLOCK = 103, 4  # 25 full windows of 4 targets, 2 targets left over
META = torch.device("meta")


def _same(a: Any, b: Any) -> bool:
    """Exact equality of batches of any kind (tuples, tensors, PaddedBatch, PyG Data/Batch)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, PaddedBatch):
        return isinstance(b, PaddedBatch) and _same((a.x, a.lengths, a.y), (b.x, b.lengths, b.y))
    return sorted(a.keys()) == sorted(b.keys()) and all(_same(a[k], b[k]) for k in a.keys())


def _same_lists(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------- the kinds, built from tiny inputs


def _token_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "train.bin", np.arange(N_TOKENS), np.uint16)  # token k has id k


def _stream(tmp_path: Path, mode: str = "random", block: int = BLOCK) -> TokenStream:
    return TokenStream.from_file(_token_file(tmp_path), np.uint16, block, mode=mode)


def _sequences(n: int = 14, *, skew: bool = False) -> PaddedSequences:
    g = torch.Generator().manual_seed(0)
    lengths = [1 + 30 * (i % 4 == 0) for i in range(n)] if skew else torch.randint(1, 9, (n,), generator=g).tolist()
    # sequence i holds i*100 + 1, i*100 + 2, ...: never the pad id 0, and it names its sequence
    seqs = [i * 100 + 1 + torch.arange(length) for i, length in enumerate(lengths)]
    return PaddedSequences(seqs, labels=torch.arange(n), pad_id=0)


def _graphs(n: int = 10) -> list[Data]:
    out = []
    for i in range(n):
        nodes = 2 + i % 3
        chain = torch.arange(nodes - 1)
        out.append(
            Data(
                x=torch.full((nodes, 2), float(i)),
                edge_index=torch.stack([chain, chain + 1]),
                y=torch.tensor([i]),
            )
        )
    return out


def _one_graph() -> Data:
    n = 10
    idx = torch.arange(n)
    return Data(
        x=torch.randn(n, 3, generator=torch.Generator().manual_seed(1)),
        edge_index=torch.stack([idx, (idx + 1) % n]),
        y=idx % 2,
        train_mask=idx < 6,
        val_mask=(idx >= 6) & (idx < 8),
        test_mask=idx >= 8,
    )


def _seqs_of(split: PaddedSequences) -> list[Tensor]:
    return [split.values[o : o + n] for o, n in zip(split.offsets.tolist(), split.lengths.tolist(), strict=True)]


def _bucketed() -> PaddedSequences:
    return PaddedSequences(_seqs_of(_sequences(n=30, skew=True)), torch.arange(30), bucket=True, bucket_size=8)


SERIES_T = 40


def _series(span: int = 1, *, two_d: bool = False, stride: int = 1) -> SeriesWindows:
    t = torch.arange(SERIES_T, dtype=torch.float32)  # the value at index k is k
    series = torch.stack([t, -t], 1) if two_d else t
    start, end = chronological_spans(SERIES_T, 10, 8)[span]
    return SeriesWindows(series, input_len=5, horizon=3, start=start, end=end, stride=stride)


# name -> (factory, batch size, shuffles): the kinds the generic tests run over
KINDS: dict[str, tuple[Callable[[Path], Any], int, bool]] = {
    "tokens-random": (lambda p: _stream(p), 4, True),
    "tokens-streams": (lambda p: _stream(p, "streams", 5), 4, False),
    "padded": (lambda p: _sequences(), 4, True),
    "padded-bucket": (lambda p: _bucketed(), 4, True),
    "graphs": (lambda p: GraphBatches(_graphs()), 4, True),
    "full-graph": (lambda p: FullGraph(_one_graph(), "train_mask"), 4, False),
    "series": (lambda p: _series(0), 4, True),
}


def _num_batches(split: Any, bs: int, shuffle: bool, drop_last: bool = False) -> int:
    if isinstance(split, TokenStream):
        return split.num_batches(bs, drop_last, shuffle=shuffle)
    return split.num_batches(bs, drop_last)


@pytest.fixture(params=list(KINDS))
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any, int, bool]:
    factory, bs, shuffles = KINDS[request.param]
    return request.param, factory(tmp_path), bs, shuffles


# --------------------------------------------------------------------- the Split promises, for every kind


def test_kinds_satisfy_the_protocol_and_name_their_options(kind: tuple[str, Any, int, bool]) -> None:
    _, split, _, _ = kind
    assert isinstance(split, Split)
    assert split.options <= {"batch_size", "eval_batch_size", "augment", "on_device"}
    assert "on_device" in split.options and "augment" not in split.options
    if isinstance(split, FullGraph):
        assert split.options == {"on_device"}
    assert TensorSplit.options == {"batch_size", "eval_batch_size", "augment", "on_device"}


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_num_batches_is_what_a_pass_yields(kind: tuple[str, Any, int, bool], shuffle: bool, drop_last: bool) -> None:
    _, split, bs, _ = kind
    for b in (bs, 3):
        got = list(split.batches(b, shuffle=shuffle, seed=1, epoch=2, drop_last=drop_last))
        assert len(got) == _num_batches(split, b, shuffle, drop_last) > 0


def test_order_is_a_pure_function_of_seed_and_epoch(kind: tuple[str, Any, int, bool]) -> None:
    _, split, bs, shuffles = kind

    def run(seed: int, epoch: int) -> list[Any]:
        return list(split.batches(bs, shuffle=True, seed=seed, epoch=epoch, augment=True))

    a = run(3, 1)
    torch.manual_seed(0)
    np.random.seed(0)
    assert _same_lists(run(3, 1), a)  # the global generators play no part
    if shuffles:
        assert not _same_lists(run(3, 2), a)
        assert not _same_lists(run(4, 1), a)
    else:  # streams and the full graph have one order
        assert _same_lists(run(3, 2), a)


@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_at_start_yields_exactly_the_tail(kind: tuple[str, Any, int, bool], shuffle: bool) -> None:
    _, split, bs, _ = kind
    kw = {"shuffle": shuffle, "seed": 5, "epoch": 3}
    full = list(split.batches(bs, **kw))
    for k in range(len(full) + 2):
        assert _same_lists(list(split.batches(bs, start=k, **kw)), full[k:])


def _items(batch: Any) -> int:
    if isinstance(batch, tuple):
        return int(batch[0].shape[0])
    if isinstance(batch, PaddedBatch):
        return len(batch)
    return int(batch.num_graphs) if isinstance(batch, Batch) else 1


def _check_part(name: str, split: Any, glob: Any, part: Any, r: int, world: int) -> None:
    """Check that ``part`` is rank ``r``'s share of the global batch ``glob``: its items ``[r::world]``."""
    if name == "full-graph":  # the same full graph on every rank
        assert _same(part, glob) and part.x is split.data.x
    elif isinstance(glob, tuple):
        assert _same(part, tuple(t[r::world] for t in glob))
    elif isinstance(glob, PaddedBatch):  # each rank pads to its own longest
        width = part.x.shape[1]
        assert width == int(part.lengths.max()) <= glob.x.shape[1]
        assert _same(part, PaddedBatch(glob.x[r::world, :width], glob.lengths[r::world], glob.y[r::world]))
    else:
        ids = glob.y[r::world]
        assert torch.equal(part.y, ids)
        assert torch.equal(part.x, torch.cat([split.data_list[i].x for i in ids.tolist()]))


@pytest.mark.parametrize("shuffle", [False, True])
def test_rank_parts_interleave_to_the_single_process_batch(kind: tuple[str, Any, int, bool], shuffle: bool) -> None:
    name, split, bs, _ = kind
    kw = {"shuffle": shuffle, "seed": 2, "epoch": 1, "augment": True}
    single = list(split.batches(bs, **kw))
    world = 2
    for r in range(world):
        mine = iter(split.batches(bs, rank=r, world=world, **kw))
        for glob in single:
            if name == "full-graph" or _items(glob) > r:  # a rank whose share would be empty gets no batch
                _check_part(name, split, glob, next(mine), r, world)
        assert next(mine, None) is None
    if shuffle:  # in training every global batch is shared by all ranks (here: no short batch below 2 items)
        counts = [len(list(split.batches(bs, rank=r, world=world, **kw))) for r in range(world)]
        assert counts == [len(single)] * world


def test_ranks_get_no_empty_batch() -> None:
    split = GraphBatches(_graphs(5))  # the last global batch of 4 has one graph
    r0, r1 = (list(split.batches(4, rank=r, world=2)) for r in range(2))
    assert [b.num_graphs for b in r0] == [2, 1] and [b.num_graphs for b in r1] == [2]


# --------------------------------------------------------------------- TokenStream


def test_write_tokens_round_trips_atomically(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    path.write_bytes(b"old")
    write_tokens(path, torch.tensor([5, 0, 65535]), np.uint16)
    assert np.array_equal(np.fromfile(path, dtype=np.uint16), [5, 0, 65535])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin"]  # no temporary file left behind
    with pytest.raises(ValueError, match="do not fit in uint16"):
        write_tokens(path, [70000], np.uint16)
    assert np.array_equal(np.fromfile(path, dtype=np.uint16), [5, 0, 65535])  # the failed write left it alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bin"]


def test_token_stream_maps_the_file_and_never_loads_it(tmp_path: Path) -> None:
    s = _stream(tmp_path)
    assert isinstance(s.tokens, np.memmap) and s.tokens.mode == "r"
    assert len(s) == N_TOKENS
    for x, y in s.batches(4, shuffle=True, seed=0):
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (4, BLOCK)
        assert torch.equal(y, x + 1)  # token k is k: y is x shifted by one
        assert int(x.min()) >= 0 and int(y.max()) <= N_TOKENS - 1
    assert isinstance(s.tokens, np.memmap)
    assert s.num_batches(4) == 25 // 4
    assert TokenStream(np.arange(N_TOKENS), BLOCK, windows_per_epoch=9).num_batches(4) == 2
    assert TokenStream(np.arange(N_TOKENS), BLOCK, windows_per_epoch=3).num_batches(4) == 1  # never empty


def test_random_windows_reach_every_valid_start() -> None:
    s = TokenStream(np.arange(7), 4, windows_per_epoch=400)  # starts 0, 1, 2 are the valid ones
    starts = torch.cat([x[:, 0] for x, _ in s.batches(4, shuffle=True)])
    assert sorted(set(starts.tolist())) == [0, 1, 2]


@pytest.mark.parametrize("world", [1, 2])
def test_token_evaluation_reads_every_target_once_in_order(tmp_path: Path, world: int) -> None:
    s = _stream(tmp_path)
    per_rank = [list(s.batches(4, rank=r, world=world)) for r in range(world)]
    if world == 1:
        ys = torch.cat([y.flatten() for _, y in per_rank[0]])
        assert ys.tolist() == list(range(1, N_TOKENS))  # consecutive windows, then the 2 leftover targets
        assert per_rank[0][-1][0].tolist() == [[100, 101]]
    else:
        ys = torch.cat([y.flatten() for p in per_rank for _, y in p])
        assert sorted(ys.tolist()) == list(range(1, N_TOKENS))
    assert s.num_batches(4, shuffle=False) == 8 and s.num_batches(4, True, shuffle=False) == 6


def test_streams_continue_row_by_row(tmp_path: Path) -> None:
    s = _stream(tmp_path, "streams", 5)  # 4 streams of 25 tokens: 24 targets each, 4 chunks of 5 and one of 4
    got = list(s.batches(4))
    assert [tuple(x.shape) for x, _ in got] == [(4, 5)] * 4 + [(4, 4)]
    for (x0, y0), (x1, _) in zip(got, got[1:], strict=False):
        assert torch.equal(x1[:, 0], y0[:, -1])  # each row's next chunk begins where its last ended
        assert torch.equal(x1[:, 0], x0[:, -1] + 1)
    assert torch.equal(got[0][0][:, 0], torch.arange(4) * 25)  # stream b begins at token 25 b
    ys = torch.cat([y.flatten() for _, y in got])
    expected = [k for k in range(100) if k % 25]  # every token but a stream's first is a target, once
    assert sorted(ys.tolist()) == expected
    assert _same_lists(list(s.batches(4, shuffle=True, seed=9, epoch=4)), got)  # streams are never shuffled


def test_streams_shard_by_stream(tmp_path: Path) -> None:
    s = _stream(tmp_path, "streams", 5)
    glob = list(s.batches(4))
    for r in range(2):
        mine = list(s.batches(4, rank=r, world=2))
        assert all(_same(m, (x[r::2], y[r::2])) for m, (x, y) in zip(mine, glob, strict=True))
    with pytest.raises(ValueError, match="divisible by world=2"):
        next(s.batches(3, rank=0, world=2))
    with pytest.raises(UserError, match="too few for 60 streams"):
        next(s.batches(60))


def test_token_stream_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^The corpus has 120 tokens, fewer than block_size\+1 = 257\.$"):
        TokenStream(np.zeros(120, dtype=np.int64), 256)
    with pytest.raises(UserError, match="empty"):
        TokenStream(np.zeros(0, dtype=np.int64), 4)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        TokenStream.from_file(tmp_path / "empty.bin", np.uint16, 4)
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(DataError, match="not a whole number of uint16"):
        TokenStream.from_file(tmp_path / "odd.bin", np.uint16, 1)
    with pytest.raises(DataError, match="does not exist"):
        TokenStream.from_file(tmp_path / "missing.bin", np.uint16, 4)
    with pytest.raises(UserError, match="'random' or 'streams'"):
        TokenStream(np.arange(10), 4, mode="shuffled")  # type: ignore[arg-type]


def test_token_stream_moves_batches_to_its_device(tmp_path: Path) -> None:
    s = _stream(tmp_path)
    assert s.to(torch.device("cpu")) is s
    m = s.to(META)
    assert m.tokens is s.tokens and s.device is None
    x, y = next(m.batches(4))
    assert x.device == y.device == META


# --------------------------------------------------------------------- PaddedSequences


def test_padded_batches_pad_with_pad_id_and_keep_lengths() -> None:
    s = _sequences()
    seqs = _seqs_of(s)
    got = list(s.batches(4))
    assert torch.cat([b.y for b in got]).tolist() == list(range(len(s)))  # an evaluation pass: each once, in order
    for b in got:
        assert b.x.dtype == torch.int64 and b.x.shape[1] == int(b.lengths.max())
        assert b.mask.shape == b.x.shape and torch.equal(b.mask.sum(1), b.lengths)
        assert bool((b.x[~b.mask] == 0).all()) and bool((b.x[b.mask] > 0).all())
        for row, n, i in zip(b.x, b.lengths.tolist(), b.y.tolist(), strict=True):
            assert n == len(seqs[i]) and torch.equal(row[:n], seqs[i])
    assert len(got[0]) == 4


def test_shuffled_padded_pass_sees_every_sequence_once() -> None:
    for s in (_sequences(), PaddedSequences(_seqs_of(_sequences()), torch.arange(14), bucket=True, bucket_size=6)):
        ids = torch.cat([b.y for b in s.batches(4, shuffle=True, seed=1)]).tolist()
        assert sorted(ids) == list(range(14)) and ids != list(range(14))


def _padding(split: PaddedSequences, **kw: Any) -> int:
    return sum(int((~b.mask).sum()) for b in split.batches(4, shuffle=True, **kw))


def test_bucketing_reduces_padding_on_skewed_lengths() -> None:
    plain = _sequences(n=40, skew=True)  # lengths 31, 1, 1, 1, 31, ...
    seqs, labels = _seqs_of(plain), torch.arange(40)
    bucketed = PaddedSequences(seqs, labels, bucket=True, bucket_size=20)
    for seed in range(3):
        assert _padding(bucketed, seed=seed) < _padding(plain, seed=seed) / 2
    batches = list(bucketed.batches(4, shuffle=True, seed=0, drop_last=True))
    assert len(batches) == 10 and all(len(b) == 4 for b in batches)


def test_padded_features_per_position_labels_and_from_flat() -> None:
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randn(n, 3, generator=g) for n in (2, 5, 1, 4)]
    tags = [torch.arange(len(x)) + 1 for x in seqs]
    s = PaddedSequences(seqs, tags, pad_id=-1.0)
    b = next(s.batches(4))
    assert b.x.shape == (4, 5, 3) and b.x.dtype == torch.float32 and b.y.shape == (4, 5)
    assert bool((b.x[~b.mask] == -1).all()) and bool((b.y[~b.mask] == -100).all())
    assert torch.equal(b.x[1], seqs[1]) and torch.equal(b.y[3, :4], tags[3])
    flat = PaddedSequences.from_flat(
        torch.cat(seqs), torch.tensor([2, 5, 1, 4]), torch.cat(tags), per_position=True, pad_id=-1.0
    )
    assert _same(next(flat.batches(4)), b)
    assert isinstance(b.to(META).x, Tensor) and b.to(META).lengths.device == META


def test_padded_sequences_errors_and_device() -> None:
    with pytest.raises(UserError, match="no sequences"):
        PaddedSequences([])
    with pytest.raises(UserError, match="Sequence 1 is empty"):
        PaddedSequences([torch.ones(2), torch.ones(0)])
    s = _sequences()
    assert s.to(torch.device("cpu")) is s
    b = next(s.to(META).batches(4, shuffle=True))
    assert b.x.device == META and b.x.shape[0] == 4


# --------------------------------------------------------------------- GraphBatches and FullGraph


def test_graph_batches_batch_whole_graphs() -> None:
    graphs = _graphs()
    s = GraphBatches(graphs)
    got = list(s.batches(4))
    assert isinstance(got[0], Batch) and [b.num_graphs for b in got] == [4, 4, 2]
    assert torch.cat([b.y for b in got]).tolist() == list(range(10))  # an evaluation pass: each once, in order
    b = got[1]
    assert b.num_nodes == sum(graphs[i].num_nodes for i in range(4, 8))
    assert torch.equal(b.x, torch.cat([graphs[i].x for i in range(4, 8)]))
    ids = torch.cat([b.y for b in s.batches(4, shuffle=True, seed=3)]).tolist()
    assert sorted(ids) == list(range(10)) and ids != list(range(10))
    with pytest.raises(UserError, match="no graphs"):
        GraphBatches([])


def test_graph_batches_move_copies_to_the_device() -> None:
    graphs = _graphs(3)
    s = GraphBatches(graphs)
    assert s.to(torch.device("cpu")) is s
    m = s.to(META)
    assert next(m.batches(2)).x.device == META
    assert graphs[0].x.device.type == "cpu"  # the caller's graphs stay where they were


def test_full_graph_yields_the_graph_with_its_mask() -> None:
    data = _one_graph()
    train, val, test = FullGraph.splits(data)
    assert (len(train), len(val), len(test)) == (6, 2, 2)
    masks = []
    for split in (train, val, test):
        assert all(split.num_batches(b) == 1 for b in (1, 4, 1000))
        (g,) = list(split.batches(512, shuffle=True, seed=1, epoch=3, rank=1, world=2))
        assert g.x is data.x and g.edge_index is data.edge_index  # a shallow copy
        assert g.mask.dtype == torch.bool and int(g.mask.sum()) == len(split)
        masks.append(g.mask)
        assert list(split.batches(512, start=1)) == []
    assert "mask" not in data  # the graph itself is left alone
    assert torch.equal(masks[0] | masks[1] | masks[2], torch.ones(10, dtype=torch.bool))
    assert not bool((masks[0] & masks[1]).any() or (masks[1] & masks[2]).any())
    r0 = next(train.batches(8, rank=0, world=2))
    r1 = next(train.batches(8, rank=1, world=2))
    assert _same(r0, r1)  # no sharding: every rank computes the same full-batch gradient


def test_full_graph_moves_once_for_all_splits_and_checks_masks() -> None:
    data = _one_graph()
    train, val, _ = FullGraph.splits(data)
    assert train.to(torch.device("cpu")) is train
    mt, mv = train.to(META), val.to(META)
    assert mt.data is mv.data and mt.data.x.device == META and data.x.device.type == "cpu"
    assert next(mv.batches(1)).mask.device == META
    with pytest.raises(UserError, match="no node mask 'dev_mask'"):
        FullGraph(data, "dev_mask")
    data.empty_mask = torch.zeros(10, dtype=torch.bool)
    with pytest.raises(UserError, match="'empty_mask' has no nodes"):
        FullGraph(data, "empty_mask")


# --------------------------------------------------------------------- SeriesWindows


def test_chronological_spans() -> None:
    assert chronological_spans(40, 10, 8) == ((0, 22), (22, 32), (32, 40))
    with pytest.raises(UserError, match="too few"):
        chronological_spans(10, 6, 4)


@pytest.mark.parametrize("span", [0, 1, 2])
def test_series_targets_stay_in_the_span_and_align_with_inputs(span: int) -> None:
    s = _series(span)
    start, end = chronological_spans(SERIES_T, 10, 8)[span]
    seen: list[int] = []
    for x, y in s.batches(4):
        assert x.shape[1:] == (5,) and y.shape[1:] == (3,)
        first = y[:, 0].long()
        # the value at index k is k: inputs are the 5 steps before the first target, targets the next 3
        assert torch.equal(x, first[:, None] - 5.0 + torch.arange(5))
        assert torch.equal(y, first[:, None] + torch.arange(3.0))
        assert int(y.min()) >= start and int(y.max()) < end
        seen += first.tolist()
        assert torch.equal(first, torch.as_tensor(s.target_index(torch.arange(len(seen) - len(first), len(seen)))))
    assert seen == list(range(max(start, 5), end - 2))  # each window once, in time order
    covered = {t + h for t in seen for h in range(3)}
    assert covered == set(range(max(start, 5), end))  # every target index of the span (after the first input)
    assert len(s) == len(seen)


def test_series_two_d_stride_and_views() -> None:
    s = _series(1, two_d=True, stride=2)
    x, y = next(s.batches(8))
    assert x.shape == (4, 5, 2) and y.shape == (4, 3, 2)  # first targets 22, 24, 26, 28 (of the span [22, 32))
    assert y[:, 0, 0].tolist() == [22, 24, 26, 28] and torch.equal(y[..., 1], -y[..., 0])
    assert torch.equal(x[0, :, 0], torch.arange(17.0, 22.0))
    assert s._windows.untyped_storage().data_ptr() == s.series.untyped_storage().data_ptr()  # views, not copies
    assert next(s.to(META).batches(2))[0].device == META


def test_series_errors() -> None:
    with pytest.raises(UserError, match=r"^The series has 6 steps, fewer than input_len\+horizon = 8\.$"):
        SeriesWindows(torch.zeros(6), 5, 3, 0, 6)
    with pytest.raises(UserError, match="holds no window"):
        SeriesWindows(torch.zeros(40), 5, 3, 30, 32)
    with pytest.raises(UserError, match="empty"):
        SeriesWindows(torch.zeros(0), 5, 3, 0, 1)
