"""Two-dimensional toy densities for flows and other density models."""

from __future__ import annotations

import torch

from archzoo.data.splits import DataBundle, TensorSplit, holdout
from archzoo.errors import UserError
from archzoo.registry import register_dataset


@register_dataset("two_moons")
def two_moons(n_samples: int = 8000, noise: float = 0.05, val_fraction: float = 0.1, seed: int = 0) -> DataBundle:
    """Two interleaving half circles (scikit-learn's ``make_moons``) as float32 points ``(N, 2)``.

    ``val_fraction`` of the points go to validation and as many to test; the rest
    train. Labels say which moon a point came from (the density models ignore them).

    Args:
        n_samples: points in all splits together (default 8000).
        noise: std of the Gaussian noise added to the points (default 0.05).
        val_fraction: share of points in validation, and again in test (default 0.1).
        seed: seed of the points and of the split (default 0).
    """
    from sklearn.datasets import make_moons

    if n_samples < 10:
        raise UserError(f"two_moons needs at least 10 samples, got {n_samples}.")
    if not 0.0 < val_fraction < 0.5:
        raise UserError(f"val_fraction must be in (0, 0.5) for two_moons, got {val_fraction}.")
    pts, labels = make_moons(n_samples=n_samples, noise=noise, shuffle=True, random_state=seed)
    x = torch.from_numpy(pts).float()  # (N, 2)
    y = torch.from_numpy(labels).long()  # (N,)
    rest, test = holdout(n_samples, val_fraction, seed)
    tr, va = holdout(len(rest), val_fraction / (1 - val_fraction), seed + 1)
    train, val = rest[tr], rest[va]
    info = {
        "name": "two_moons",
        "kind": "points",
        "in_features": 2,
        "num_classes": 2,
        "classes": ["upper", "lower"],
    }
    return DataBundle(
        TensorSplit(x[train], y[train]),
        TensorSplit(x[val], y[val]),
        TensorSplit(x[test], y[test]),
        info,
    )
