"""Tests for archzoo.data.splits: coverage, (seed, epoch) order, resume, rank slicing, holdout."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.augment import build_augment
from archzoo.data.splits import DataBundle, TensorSplit, epoch_generator, holdout
from archzoo.errors import UserError

N = 23  # not a multiple of the batch size, so the last batch is short


def _split(augment: bool = False) -> TensorSplit:
    x = torch.randn(N, 2, 5, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(N)  # the label is the sample's index
    aug = build_augment({"crop_padding": 1, "flip": True, "cutout": 2}) if augment else None
    return TensorSplit(x, y, augment=aug)


def _ids(batches: list[tuple[torch.Tensor, ...]]) -> list[int]:
    return torch.cat([b[1] for b in batches]).tolist()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("bs", [1, 5, 23, 40])
def test_every_sample_once_per_epoch(shuffle: bool, bs: int) -> None:
    s = _split()
    batches = list(s.batches(bs, shuffle=shuffle, seed=3, epoch=1))
    assert len(batches) == s.num_batches(bs) == -(-N // bs)
    assert all(len(b[0]) == bs for b in batches[:-1])
    assert len(batches[-1][0]) == N - bs * (len(batches) - 1)
    ids = _ids(batches)
    assert sorted(ids) == list(range(N))
    if not shuffle:
        assert ids == list(range(N))
    # inputs stay aligned with labels
    for x, y in batches:
        assert torch.equal(x, s.tensors[0][y])


def test_drop_last() -> None:
    s = _split()
    batches = list(s.batches(5, shuffle=True, drop_last=True))
    assert len(batches) == s.num_batches(5, drop_last=True) == 4
    assert all(len(b[1]) == 5 for b in batches)
    assert len(set(_ids(batches))) == 20


def test_order_depends_only_on_seed_and_epoch() -> None:
    s = _split()

    def order(seed: int, epoch: int) -> list[int]:
        return _ids(list(s.batches(4, shuffle=True, seed=seed, epoch=epoch)))

    assert order(7, 2) == order(7, 2)
    assert order(7, 2) == _ids(list(_split().batches(4, shuffle=True, seed=7, epoch=2)))  # a fresh split too
    torch.manual_seed(123)  # the global RNG has no influence
    a = order(7, 2)
    torch.manual_seed(456)
    assert order(7, 2) == a
    assert order(7, 3) != a
    assert order(8, 2) != a
    assert order(7, 0) != order(7, 1)


def test_epoch_generator_is_pure() -> None:
    a = torch.rand(4, generator=epoch_generator(1, 2, 3))
    b = torch.rand(4, generator=epoch_generator(1, 2, 3))
    c = torch.rand(4, generator=epoch_generator(1, 2, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("augment", [False, True])
def test_start_yields_exactly_the_tail(augment: bool) -> None:
    s = _split(augment=True)
    kw = {"shuffle": True, "seed": 5, "epoch": 4, "augment": augment}
    full = list(s.batches(4, **kw))
    for k in (0, 1, 3, len(full) - 1, len(full)):
        tail = list(s.batches(4, start=k, **kw))
        assert len(tail) == len(full) - k
        for a, b in zip(full[k:], tail, strict=True):
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_augment_applies_to_inputs_of_training_batches_only() -> None:
    s = _split(augment=True)
    plain = list(s.batches(4, shuffle=True, seed=1))
    aug = list(s.batches(4, shuffle=True, seed=1, augment=True))
    for (xp, yp), (xa, ya) in zip(plain, aug, strict=True):
        assert torch.equal(yp, ya)
        assert xa.shape == xp.shape
    assert any(not torch.equal(p[0], a[0]) for p, a in zip(plain, aug, strict=True))
    # plain batches are the stored samples
    for x, y in plain:
        assert torch.equal(x, s.tensors[0][y])


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world", [2, 3])
def test_rank_slices_interleave_to_the_single_process_batch(shuffle: bool, world: int) -> None:
    s = _split()
    kw = {"shuffle": shuffle, "seed": 2, "epoch": 1}
    single = list(s.batches(6, **kw))
    per_rank = [list(s.batches(6, rank=r, world=world, **kw)) for r in range(world)]
    assert all(len(p) == len(single) for p in per_rank)
    for i, (x, y) in enumerate(single):
        for r in range(world):
            assert torch.equal(per_rank[r][i][0], x[r::world])
            assert torch.equal(per_rank[r][i][1], y[r::world])
    # over the epoch the ranks see every sample exactly once
    seen = sorted(v for r in range(world) for v in _ids(per_rank[r]))
    assert seen == list(range(N))


def test_rank_slices_of_augmented_batches_equal_the_single_process_batch() -> None:
    # The global batch under DDP must be the same as in one process, augmentation included:
    # two ranks' augmented slices, interleaved, are the single-process augmented batch.
    s = _split(augment=True)
    kw = {"shuffle": True, "seed": 2, "epoch": 1, "augment": True}
    single = list(s.batches(6, **kw))
    r0 = list(s.batches(6, rank=0, world=2, **kw))
    r1 = list(s.batches(6, rank=1, world=2, **kw))
    for (x, y), (x0, y0), (x1, y1) in zip(single, r0, r1, strict=True):
        assert torch.equal(y0, y[0::2]) and torch.equal(y1, y[1::2])
        assert torch.equal(x0, x[0::2])
        assert torch.equal(x1, x[1::2])


def test_holdout_is_disjoint_complete_and_fixed_by_seed() -> None:
    tr, va = holdout(50, 0.2, seed=4)
    assert len(va) == 10 and len(tr) == 40
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(50))
    assert tr.tolist() == sorted(tr.tolist()) and va.tolist() == sorted(va.tolist())
    tr2, va2 = holdout(50, 0.2, seed=4)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    _, va3 = holdout(50, 0.2, seed=5)
    assert not torch.equal(va, va3)
    tr0, va0 = holdout(7, 0.0, seed=0)
    assert len(va0) == 0 and tr0.tolist() == list(range(7))


def test_split_validation_and_device() -> None:
    with pytest.raises(ValueError, match="same number of samples"):
        TensorSplit(torch.zeros(3, 2), torch.zeros(4))
    s = _split()
    assert len(s) == N
    assert s.to(torch.device("cpu")) is s


def test_bundle_split_lookup() -> None:
    s = _split()
    b = DataBundle(s, s, None, {"num_classes": 3})
    assert b.split("train") is s and b.split("val") is s
    with pytest.raises(UserError, match="no 'test' split"):
        b.split("test")
    with pytest.raises(UserError, match="no 'dev' split"):
        b.split("dev")
