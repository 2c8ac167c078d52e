"""Datasets that ship with scikit-learn and need no download: digits and diabetes.

The test split of each is fixed (seed 0, stratified for digits) whatever the
run's seed, so results of different runs are comparable; the validation split
is then held out of the rest with the run's seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from archzoo.data.augment import build_augment
from archzoo.data.splits import DataBundle, TensorSplit, holdout
from archzoo.registry import register_dataset

TEST_SEED = 0


def _stratified_test(y: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (rest, test) with ``fraction`` of every class in test, fixed by TEST_SEED."""
    rng = np.random.default_rng(TEST_SEED)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.append(idx[: int(round(len(idx) * fraction))])
    t = np.sort(np.concatenate(test))
    rest = np.setdiff1d(np.arange(len(y)), t)
    return rest, t


@register_dataset("digits")
def digits(
    val_fraction: float = 0.1, seed: int = 0, augment: dict[str, Any] | None = None, test_fraction: float = 0.2
) -> DataBundle:
    """scikit-learn's 1,797 handwritten digits, 8×8 pixels with values 0–16, 10 classes.

    Images are scaled to [0, 1] and standardised with the training mean and std,
    shaped ``(N, 1, 8, 8)``.
    """
    from sklearn.datasets import load_digits

    from archzoo.data.images import refuse_flip

    refuse_flip(augment, "digits")
    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    y = d.target.astype(np.int64)
    rest, test = _stratified_test(y, test_fraction)
    tr, va = holdout(len(rest), val_fraction, seed)
    tr_idx, va_idx = rest[tr.numpy()], rest[va.numpy()]
    mean, std = float(x[tr_idx].mean()), float(x[tr_idx].std())
    xt = torch.from_numpy((x - mean) / std).unsqueeze(1)  # (N, 1, 8, 8)
    yt = torch.from_numpy(y)
    aug = build_augment(augment, fill=(0.0 - mean) / std)
    info = {
        "num_classes": 10,
        "in_channels": 1,
        "image_size": 8,
        "classes": [str(i) for i in range(10)],
        "mean": [mean],
        "std": [std],
        "pixel_max": 16.0,
        "kind": "image",
        "flip_changes_class": True,
    }
    return DataBundle(
        TensorSplit(xt[tr_idx], yt[tr_idx], augment=aug),
        TensorSplit(xt[va_idx], yt[va_idx]),
        TensorSplit(xt[test], yt[test]),
        info,
    )


@register_dataset("diabetes")
def diabetes(val_fraction: float = 0.15, seed: int = 0, test_fraction: float = 0.2) -> DataBundle:
    """scikit-learn's diabetes regression: 442 patients, 10 features, disease progression after a year.

    Features and target are standardised with training statistics; the task reports
    metrics in the target's original units through ``target_mean``/``target_std``.
    """
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    x = d.data.astype(np.float32)
    y = d.target.astype(np.float32)
    rng = np.random.default_rng(TEST_SEED)
    perm = rng.permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, rest = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    tr, va = holdout(len(rest), val_fraction, seed)
    tr_idx, va_idx = rest[tr.numpy()], rest[va.numpy()]
    xm, xs = x[tr_idx].mean(0), x[tr_idx].std(0)
    ym, ys = float(y[tr_idx].mean()), float(y[tr_idx].std())
    xt = torch.from_numpy((x - xm) / xs)
    yt = torch.from_numpy((y - ym) / ys)
    info = {
        "in_features": 10,
        "out_features": 1,
        "target_mean": ym,
        "target_std": ys,
        "kind": "tabular",
        "features": list(d.feature_names),
    }
    return DataBundle(
        TensorSplit(xt[tr_idx], yt[tr_idx]),
        TensorSplit(xt[va_idx], yt[va_idx]),
        TensorSplit(xt[test], yt[test]),
        info,
    )
