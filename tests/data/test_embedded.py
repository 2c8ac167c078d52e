"""Tests for archzoo.data.embedded: scikit-learn's digits and diabetes as DataBundles."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.embedded import diabetes, digits
from archzoo.data.splits import DataBundle
from archzoo.errors import UserError
from archzoo.registry import create_dataset


@pytest.fixture(scope="module")
def dig0() -> DataBundle:
    return digits(seed=0)


@pytest.fixture(scope="module")
def dig1() -> DataBundle:
    return digits(seed=1)


def _raw(bundle: DataBundle, split: str) -> torch.Tensor:
    """Undo the normalisation, giving pixel values in [0, 1] (in 1/16 steps)."""
    x = bundle.split(split).tensors[0]
    return x * bundle.info["std"][0] + bundle.info["mean"][0]


def _keys(bundle: DataBundle, split: str) -> set[tuple[int, ...]]:
    """A split as a set of (label, 64 pixel values in sixteenths): identifies each sample."""
    px = (_raw(bundle, split) * 16).round().long().flatten(1)
    y = bundle.split(split).tensors[1]
    return {(int(lbl), *row.tolist()) for lbl, row in zip(y, px, strict=True)}


def test_digits_shapes_and_info(dig0: DataBundle) -> None:
    info = dig0.info
    assert info["num_classes"] == 10 and info["in_channels"] == 1 and info["image_size"] == 8
    assert info["classes"] == [str(i) for i in range(10)]
    for name in ("train", "val", "test"):
        x, y = dig0.split(name).tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 8, 8) and x.shape[0] == y.shape[0]
        assert set(y.unique().tolist()) == set(range(10))
    sizes = [len(dig0.split(n)) for n in ("train", "val", "test")]
    assert sum(sizes) == 1797
    assert sizes[2] == pytest.approx(0.2 * 1797, abs=10)
    assert sizes[1] == round(0.1 * (1797 - sizes[2]))
    raw = _raw(dig0, "train")
    assert float(raw.min()) == pytest.approx(0.0, abs=1e-5) and float(raw.max()) == pytest.approx(1.0, abs=1e-5)


def test_digits_test_split_is_stratified(dig0: DataBundle) -> None:
    y = dig0.test.tensors[1]
    counts = torch.bincount(y, minlength=10)
    assert int(counts.min()) >= 33 and int(counts.max()) <= 38  # about 20% of ~180 per class


def test_digits_train_normalisation(dig0: DataBundle) -> None:
    x = dig0.train.tensors[0]
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(x.std()) == pytest.approx(1.0, abs=1e-3)


def test_digits_splits_are_disjoint_and_cover(dig0: DataBundle) -> None:
    # Count with multiplicity via labels+pixels; digits has a few exact duplicate images, so compare
    # the multiset of all samples with the union of the splits.
    from collections import Counter

    from sklearn.datasets import load_digits

    d = load_digits()
    allk = Counter(
        (int(lbl), *row.tolist())
        for lbl, row in zip(d.target, d.images.reshape(len(d.target), -1).astype(int), strict=True)
    )
    parts = Counter()
    for name in ("train", "val", "test"):
        px = (_raw(dig0, name) * 16).round().long().flatten(1)
        y = dig0.split(name).tensors[1]
        parts.update((int(lbl), *row.tolist()) for lbl, row in zip(y, px, strict=True))
    assert parts == allk
    tr, va, te = (_keys(dig0, n) for n in ("train", "val", "test"))
    # duplicates aside, no image is in two splits
    dups = {k for k, c in allk.items() if c > 1}
    assert not ((tr & va) - dups) and not ((tr & te) - dups) and not ((va & te) - dups)


def test_digits_test_split_is_fixed_and_val_follows_the_seed(dig0: DataBundle, dig1: DataBundle) -> None:
    assert torch.equal(dig0.test.tensors[1], dig1.test.tensors[1])
    torch.testing.assert_close(_raw(dig0, "test"), _raw(dig1, "test"), atol=1e-5, rtol=0)
    assert _keys(dig0, "val") != _keys(dig1, "val")
    assert len(dig0.val) == len(dig1.val)
    # same seed, same split
    again = digits(seed=0)
    assert torch.equal(again.val.tensors[0], dig0.val.tensors[0])


def test_digits_augment_is_attached_to_train_only() -> None:
    b = digits(augment={"crop_padding": 1})
    assert b.train.augment is not None and b.val.augment is None and b.test.augment is None
    x, _ = next(b.train.batches(16, augment=True))
    assert x.shape == (16, 1, 8, 8)
    with pytest.raises(UserError):
        digits(augment={"rotate": 5})


def test_diabetes() -> None:
    b = diabetes(seed=0)
    info = b.info
    assert info["in_features"] == 10 and info["out_features"] == 1 and info["kind"] == "tabular"
    assert len(info["features"]) == 10
    sizes = [len(b.split(n)) for n in ("train", "val", "test")]
    assert sum(sizes) == 442 and sizes[2] == round(0.2 * 442)
    xtr, ytr = b.train.tensors
    assert xtr.shape == (sizes[0], 10) and ytr.shape == (sizes[0],)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.float32
    # standardised with training statistics
    assert float(ytr.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(ytr.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(xtr.mean(0), torch.zeros(10), atol=1e-4, rtol=0)
    torch.testing.assert_close(xtr.std(0, unbiased=False), torch.ones(10), atol=1e-4, rtol=0)
    # target_mean/target_std map back to the original units (disease progression, 25..346)
    from sklearn.datasets import load_diabetes

    target = torch.from_numpy(load_diabetes().target).float()
    orig = (
        torch.cat([b.split(n).tensors[1] for n in ("train", "val", "test")]) * info["target_std"] + info["target_mean"]
    )
    torch.testing.assert_close(orig.sort().values, target.sort().values, atol=1e-3, rtol=0)
    assert 100 < info["target_mean"] < 200 and 50 < info["target_std"] < 100


def test_diabetes_test_fixed_val_follows_seed() -> None:
    a, c = diabetes(seed=0), diabetes(seed=1)
    ta = a.test.tensors[1] * a.info["target_std"] + a.info["target_mean"]
    tc = c.test.tensors[1] * c.info["target_std"] + c.info["target_mean"]
    torch.testing.assert_close(ta, tc, atol=1e-3, rtol=0)
    va = a.val.tensors[1] * a.info["target_std"] + a.info["target_mean"]
    vc = c.val.tensors[1] * c.info["target_std"] + c.info["target_mean"]
    assert not torch.allclose(va, vc)


def test_registered_builders() -> None:
    b = create_dataset("diabetes", val_fraction=0.2)
    assert len(b.val) == round(0.2 * (442 - round(0.2 * 442)))
    with pytest.raises(UserError, match="it accepts"):
        create_dataset("digits", colour=True)
