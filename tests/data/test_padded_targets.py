"""PaddedSequences with target sequences of their own length (sequence-to-sequence data)."""

import pytest
import torch

from archzoo.data.splits import PaddedBatch, PaddedSequences


def _split(n: int = 23, bucket: bool = False) -> PaddedSequences:
    g = torch.Generator().manual_seed(1)
    src = [torch.randint(3, 9, (int(k),), generator=g) for k in torch.randint(1, 9, (n,), generator=g)]
    tgt = [torch.full((int(k),), i + 1) for i, k in enumerate(torch.randint(1, 6, (n,), generator=g))]
    return PaddedSequences(src, targets=tgt, pad_id=0, target_pad_id=0, bucket=bucket, bucket_size=8)


def _ids(batches: list[PaddedBatch]) -> list[int]:
    return [int(b.y[i, 0]) - 1 for b in batches for i in range(len(b))]  # target i is filled with i + 1


def test_targets_padded_to_their_own_length() -> None:
    s = PaddedSequences(
        [torch.tensor([3, 4]), torch.tensor([5, 6, 7])], targets=[torch.tensor([1, 2, 3, 4]), torch.tensor([9])]
    )
    b = next(iter(s.batches(2)))
    assert b.x.tolist() == [[3, 4, 0], [5, 6, 7]]
    assert b.y.tolist() == [[1, 2, 3, 4], [9, 0, 0, 0]]
    assert b.y_lengths.tolist() == [4, 1]
    assert b.y_mask.tolist() == [[True] * 4, [True, False, False, False]]
    moved = b.to(torch.device("cpu"))
    assert torch.equal(moved.y_lengths, b.y_lengths)


def test_targets_follow_their_sources() -> None:
    s = _split()
    for b in s.batches(5, shuffle=True, seed=3, epoch=1):
        for i in range(len(b)):
            k = int(b.y[i, 0]) - 1
            lo, n = int(s.offsets[k]), int(s.lengths[k])
            assert torch.equal(b.x[i, : b.lengths[i]], s.values[lo : lo + n])
            assert int(b.y_lengths[i]) == int(s.target_lengths[k])
            assert bool((b.y[i, b.y_lengths[i] :] == 0).all())


@pytest.mark.parametrize("bucket", [False, True])
def test_order_resume_and_ranks(bucket: bool) -> None:
    s = _split(bucket=bucket)
    full = list(s.batches(4, shuffle=True, seed=5, epoch=2))
    again = list(s.batches(4, shuffle=True, seed=5, epoch=2))
    assert _ids(full) == _ids(again)
    assert sorted(_ids(full)) == list(range(len(s)))
    resumed = list(s.batches(4, shuffle=True, seed=5, epoch=2, start=3))
    assert _ids(resumed) == _ids(full[3:])
    r0 = list(s.batches(4, shuffle=True, seed=5, epoch=2, rank=0, world=2))
    r1 = list(s.batches(4, shuffle=True, seed=5, epoch=2, rank=1, world=2))
    for g, a, b in zip(full, r0, r1, strict=True):
        assert _ids([g])[0::2] == _ids([a]) and _ids([g])[1::2] == _ids([b])


def test_from_flat_and_errors() -> None:
    s = PaddedSequences.from_flat(
        torch.tensor([3, 4, 5, 6, 7]),
        torch.tensor([2, 3]),
        targets=torch.tensor([1, 2, 3, 4, 9]),
        target_lengths=[4, 1],
    )
    b = next(iter(s.batches(2)))
    assert b.y.tolist() == [[1, 2, 3, 4], [9, 0, 0, 0]]
    with pytest.raises(ValueError):
        PaddedSequences([torch.tensor([1])], targets=[torch.tensor([1]), torch.tensor([2])])
    with pytest.raises(ValueError):
        PaddedSequences([torch.tensor([1])], labels=[0], targets=[torch.tensor([1])])
    plain = next(iter(PaddedSequences([torch.tensor([1, 2])], labels=[1]).batches(1)))
    assert plain.y_lengths is None
    with pytest.raises(ValueError):
        _ = plain.y_mask
