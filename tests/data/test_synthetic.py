"""parity_sequences: fixed data, labels by their rule, padded batches."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.splits import PaddedBatch, PaddedSequences
from archzoo.errors import UserError
from archzoo.registry import create_dataset


def _all(split: PaddedSequences) -> PaddedBatch:
    return next(iter(split.batches(len(split))))


@pytest.mark.parametrize("rule", ["majority", "parity"])
def test_labels_follow_the_rule(rule: str) -> None:
    b = create_dataset("parity_sequences", n=300, rule=rule)
    assert (len(b.train), len(b.val), len(b.test)) == (240, 30, 30)
    assert b.info["vocab_size"] == 3 and b.info["pad_id"] == 0 and b.info["num_classes"] == 2
    batch = _all(b.train)
    assert isinstance(batch, PaddedBatch)
    assert batch.lengths.min() >= 5 and batch.lengths.max() <= 30
    real = batch.mask
    assert ((batch.x == 0) == ~real).all() and set(batch.x[real].unique().tolist()) == {1, 2}
    twos = ((batch.x == 2) & real).sum(1)
    expect = twos % 2 if rule == "parity" else (2 * twos > batch.lengths).long()
    assert torch.equal(batch.y, expect)
    if rule == "majority":
        assert (batch.lengths % 2 == 1).all()
    assert 0.2 < batch.y.float().mean() < 0.8  # both classes


def test_data_are_fixed() -> None:
    a, b = (_all(create_dataset("parity_sequences", n=100).val) for _ in range(2))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_bad_arguments() -> None:
    with pytest.raises(UserError, match="rule"):
        create_dataset("parity_sequences", rule="sum")
    with pytest.raises(UserError, match="odd length"):
        create_dataset("parity_sequences", min_len=4, max_len=4)
    with pytest.raises(UserError, match="empty split"):
        create_dataset("parity_sequences", n=5)


def _tensors(split: object) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = next(iter(split.batches(len(split))))  # type: ignore[attr-defined]
    return x, y


def test_sum_last_targets_are_the_sum_of_the_last_window() -> None:
    b = create_dataset("sum_last", n=500, length=30, window=10)
    assert (len(b.train), len(b.val), len(b.test)) == (400, 50, 50)
    info = b.info
    assert info["in_features"] == 30 and info["out_features"] == 1 and info["window"] == 10
    for split in (b.train, b.val, b.test):
        x, z = _tensors(split)
        assert x.shape == (len(split), 30) and z.shape == (len(split), 1)
        y = z * info["target_std"] + info["target_mean"]  # the standardised target in original units
        assert torch.allclose(y, x[:, -10:].sum(1, keepdim=True), atol=1e-4)
    _, z = _tensors(b.train)
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5  # training statistics
    assert 2.5 < info["target_std"] < 3.8  # sqrt(10) in theory


def test_sum_last_data_are_fixed() -> None:
    a, b = (_tensors(create_dataset("sum_last", n=100).test) for _ in range(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_sum_last_bad_arguments() -> None:
    with pytest.raises(UserError, match="window"):
        create_dataset("sum_last", length=5, window=10)
    with pytest.raises(UserError, match="window"):
        create_dataset("sum_last", window=0)
    with pytest.raises(UserError, match="fewer than 2"):
        create_dataset("sum_last", n=10)
    with pytest.raises(UserError, match="test_fraction"):
        create_dataset("sum_last", val_fraction=0.5, test_fraction=0.5)


# ----------------------------------------------------------------------------- long_match


def test_long_match_label_is_the_first_token_in_the_second_half() -> None:
    b = create_dataset("long_match", n=200, length=64, vocab=5)
    assert (len(b.train), len(b.val), len(b.test)) == (160, 20, 20)
    assert b.info["num_classes"] == 2 and b.info["max_len"] == 64
    for split in (b.train, b.val, b.test):
        batch = _all(split)
        assert batch.x.shape[1] == 64 and (batch.lengths == 64).all()
        assert batch.x.min() >= 1 and batch.x.max() <= 4
        again = (batch.x[:, 32:] == batch.x[:, :1]).sum(1)  # occurrences in the second half
        assert torch.equal(batch.y, (again > 0).long())
        assert again.max() == 1  # a positive holds the first token exactly once there
    first_half_again = (_all(b.train).x[:, 1:32] == _all(b.train).x[:, :1]).any(1)
    assert first_half_again.float().mean() > 0.5  # the first half is full of distractors
    dense = _all(create_dataset("long_match", n=200, length=64, vocab=5, matches=6).train)
    again = (dense.x[:, 32:] == dense.x[:, :1]).sum(1)
    assert torch.equal(again, 6 * dense.y)  # a positive holds it exactly `matches` times, a negative never
    last = _all(create_dataset("long_match", n=200, length=64, vocab=5, rule="last").train)
    assert torch.equal(last.y, (last.x[:, -1] > 2).long())  # ids 1-2 low, 3-4 high


def test_long_match_is_balanced_fixed_and_checks_arguments() -> None:
    b = create_dataset("long_match", n=1000, length=2048)
    for split, size in ((b.train, 800), (b.val, 100), (b.test, 100)):
        assert int(_all(split).y.sum()) == size // 2  # every split exactly balanced
    a2 = create_dataset("long_match", n=1000, length=2048)
    assert torch.equal(_all(b.test).x, _all(a2.test).x) and torch.equal(_all(b.test).y, _all(a2.test).y)
    for bad in ({"length": 7}, {"vocab": 2}, {"n": 5}, {"matches": 0}, {"length": 64, "matches": 33}, {"rule": "x"}):
        with pytest.raises(UserError):
            create_dataset("long_match", **bad)
