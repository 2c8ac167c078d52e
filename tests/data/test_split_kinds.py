"""Tests for the split kinds beyond TensorSplit: token streams.

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

from archzoo.data.splits import (
    Split,
    TensorSplit,
    TokenStream,
    write_tokens,
)
from archzoo.errors import DataError, UserError

N_TOKENS, BLOCK = 103, 4  # 25 full windows of 4 targets, 2 targets left over
META = torch.device("meta")


def _same(a: Any, b: Any) -> bool:
    """Exact equality of batches (tuples of tensors)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Tensor):
        return isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    return sorted(a.keys()) == sorted(b.keys()) and all(_same(a[k], b[k]) for k in a.keys())


def _same_lists(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------- the kinds, built from tiny inputs


def _token_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "train.bin", np.arange(N_TOKENS), np.uint16)  # token k has id k


def _stream(tmp_path: Path, mode: str = "random", block: int = BLOCK) -> TokenStream:
    return TokenStream.from_file(_token_file(tmp_path), np.uint16, block, mode=mode)


# name -> (factory, batch size, shuffles): the kinds the generic tests run over
KINDS: dict[str, tuple[Callable[[Path], Any], int, bool]] = {
    "tokens-random": (lambda p: _stream(p), 4, True),
    "tokens-streams": (lambda p: _stream(p, "streams", 5), 4, False),
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
    return int(batch[0].shape[0])


def _check_part(name: str, split: Any, glob: Any, part: Any, r: int, world: int) -> None:
    """Check that ``part`` is rank ``r``'s share of the global batch ``glob``: its items ``[r::world]``."""
    assert _same(part, tuple(t[r::world] for t in glob))


@pytest.mark.parametrize("shuffle", [False, True])
def test_rank_parts_interleave_to_the_single_process_batch(kind: tuple[str, Any, int, bool], shuffle: bool) -> None:
    name, split, bs, _ = kind
    kw = {"shuffle": shuffle, "seed": 2, "epoch": 1, "augment": True}
    single = list(split.batches(bs, **kw))
    world = 2
    for r in range(world):
        mine = iter(split.batches(bs, rank=r, world=world, **kw))
        for glob in single:
            if _items(glob) > r:  # a rank whose share would be empty gets no batch
                _check_part(name, split, glob, next(mine), r, world)
        assert next(mine, None) is None
    if shuffle:  # in training every global batch is shared by all ranks (here: no short batch below 2 items)
        counts = [len(list(split.batches(bs, rank=r, world=world, **kw))) for r in range(world)]
        assert counts == [len(single)] * world


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
