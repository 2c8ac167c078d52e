r"""Irregularly sampled series: a random subset of each window's time points is observed.

Each example is one window of a series on a regular grid of ``window`` points, of
which a random subset is kept as the **observations** (between ``observed_min``
and ``observed`` of them, a count drawn per window); the grid points left out are
the **interpolation** queries (inside the observed span) and the ``extrapolate``
grid points after the window are the **extrapolation** queries. A model sees the
observations alone and is asked for the values at the query times.

Times are in units of the window: the window's grid is :math:`t_k = k / (w-1)`,
:math:`k = 0..w-1`, so the window covers :math:`[0, 1]` and the extrapolation
:math:`(1, 1 + e/(w-1)]`; ``info["time_step"]`` is the grid step :math:`1/(w-1)`.

Series:

* ``sine``: ``n`` independent sine waves :math:`a \sin(2\pi f t + \varphi) + \epsilon`
  with :math:`a \sim U[0.5, 1.5]`, :math:`f \sim U[1, 3]` cycles per window,
  :math:`\varphi \sim U[0, 2\pi)` and Gaussian noise :math:`\epsilon` of std ``noise``
  (the toy set of Rubanova et al. 2019, written here from scratch); 80% train,
  10% validation, 10% test.
* ``sunspots``: statsmodels' yearly sunspot numbers (1700–2008), one grid point a
  year. The years are cut into chronological spans (:func:`chronological_spans`:
  the last ``test_len`` years test, the ``val_len`` before them validate), and a
  split holds every window (stride 1) that lies **entirely** inside its span, so
  no year is a target of two splits. Values are standardised with the mean and
  standard deviation of the training span alone. Each window is subsampled
  ``draws`` times, each time with other random points.

The subsampling is a pure function of ``data_seed`` (not the training seed), so
every run sees the same observations.

A split is a :class:`~archzoo.data.splits.TensorSplit` of six tensors,
``(obs_t, obs_x, obs_m, q_t, q_y, q_kind)``:

* ``obs_t``, ``obs_x``, ``obs_m`` :math:`(N, K)`, ``K = observed``: observation
  times (increasing), values and mask (1 observed, 0 padding; padding sits at the
  end, with time and value 0);
* ``q_t``, ``q_y`` :math:`(N, Q)`, ``Q = window - observed_min + extrapolate``:
  query times and target values;
* ``q_kind`` :math:`(N, Q)` int64: 1 interpolation, 2 extrapolation, 0 padding
  (interpolation queries first, then the extrapolation ones, then padding).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from archzoo.data.splits import DataBundle, TensorSplit, chronological_spans
from archzoo.errors import UserError
from archzoo.registry import register_dataset

SERIES = ("sine", "sunspots")
PAD, INTERP, EXTRAP = 0, 1, 2


def subsample(
    values: Tensor, window: int, extrapolate: int, observed: int, observed_min: int, g: torch.Generator
) -> tuple[Tensor, ...]:
    """Cut windows of ``window + extrapolate`` grid values into observations and queries.

    Args:
        values: :math:`(N, w + e)` values on the grid of each window.
        window, extrapolate, observed, observed_min: as for :func:`irregular_series`.
        g: the generator of the draws (counts and which points).

    Returns:
        ``(obs_t, obs_x, obs_m, q_t, q_y, q_kind)`` as in the module docstring.
    """
    n = values.shape[0]
    grid = torch.arange(window + extrapolate, dtype=torch.float32) / (window - 1)  # (w + e,)
    counts = torch.randint(observed_min, observed + 1, (n,), generator=g)  # (N,)
    # A random order of the window's points per row; the first counts[i] of it are observed.
    order = torch.rand(n, window, generator=g).argsort(dim=1)  # (N, w)
    rank = order.argsort(dim=1)  # (N, w): the position of each grid point in the order
    keep = rank < counts[:, None]  # (N, w)
    k_max = observed
    # Observations first (in time order), then the held-out points: one stable sort on "not kept".
    idx = (~keep).to(torch.int8).argsort(dim=1, stable=True)  # (N, w)
    obs_idx = idx[:, :k_max]  # (N, K)
    obs_m = keep.gather(1, obs_idx).float()  # (N, K): 1 where the index is an observation
    obs_t = grid[obs_idx] * obs_m
    obs_x = values.gather(1, obs_idx) * obs_m
    # The held-out points of the window, in time order: idx[:, counts:] (variable length per row).
    pos = torch.arange(window - observed_min)[None, :] + counts[:, None]  # (N, w - observed_min)
    interp_ok = pos < window
    interp_idx = idx.gather(1, pos.clamp(max=window - 1))
    extrap_idx = torch.arange(window, window + extrapolate).expand(n, extrapolate)
    q_idx = torch.cat([interp_idx, extrap_idx], dim=1)  # (N, Q)
    q_kind = torch.cat([torch.where(interp_ok, INTERP, PAD), torch.full((n, extrapolate), EXTRAP)], dim=1).long()
    # Padding moves to the end (a stable sort on "is padding"), and takes time and value 0.
    move = (q_kind == PAD).to(torch.int8).argsort(dim=1, stable=True)
    q_idx, q_kind = q_idx.gather(1, move), q_kind.gather(1, move)
    valid = (q_kind != PAD).float()
    q_t = grid[q_idx] * valid
    q_y = values.gather(1, q_idx) * valid
    return obs_t, obs_x, obs_m, q_t, q_y, q_kind


def sine_waves(n: int, length: int, window: int, noise: float, g: torch.Generator) -> Tensor:
    """``n`` noisy sine waves on the grid :math:`k/(w-1)`, :math:`k < ` ``length``: :math:`(N, \\text{length})`."""
    t = torch.arange(length, dtype=torch.float32) / (window - 1)
    a = 0.5 + torch.rand(n, 1, generator=g)
    f = 1.0 + 2.0 * torch.rand(n, 1, generator=g)
    phi = 2 * math.pi * torch.rand(n, 1, generator=g)
    return a * torch.sin(2 * math.pi * f * t + phi) + noise * torch.randn(n, length, generator=g)


def _windows(z: Tensor, start: int, end: int, length: int) -> tuple[Tensor, list[int]]:
    """Every window of ``length`` steps inside ``[start, end)``, stride 1: :math:`(M, \\text{length})`."""
    starts = list(range(start, end - length + 1))
    return torch.stack([z[s : s + length] for s in starts]), starts


@register_dataset("irregular_series")
def irregular_series(
    series: str = "sine",
    window: int = 100,
    observed: int = 30,
    observed_min: int | None = None,
    extrapolate: int = 20,
    n: int = 1000,
    noise: float = 0.05,
    val_len: int = 60,
    test_len: int = 60,
    draws: int = 1,
    data_seed: int = 0,
) -> DataBundle:
    """Irregularly subsampled windows of a series, with interpolation and extrapolation queries.

    Args:
        series: ``sine`` (random sine waves) or ``sunspots`` (statsmodels, yearly) (default sine).
        window: grid points of a window (default 100).
        observed: the most points kept per window, ``K`` (default 30).
        observed_min: the fewest points kept (default ``observed``: every window keeps ``observed``).
        extrapolate: grid points after the window to forecast (default 20).
        n: sine waves (sine only; default 1000).
        noise: standard deviation of the sine's noise (default 0.05).
        val_len, test_len: years of the validation and test spans (sunspots only; default 60 each).
        draws: random subsamplings of each window (default 1).
        data_seed: the seed of the waves and the subsampling (default 0).
    """
    if series not in SERIES:
        raise UserError(f"data.args.series must be one of {', '.join(SERIES)}, not '{series}'.")
    observed_min = observed if observed_min is None else observed_min
    if window < 3:
        raise UserError(f"data.args.window must be at least 3 grid points, not {window}.")
    if not 1 <= observed_min <= observed <= window - 1:
        raise UserError(
            f"data.args.observed_min ({observed_min}) and observed ({observed}) must satisfy "
            f"1 <= observed_min <= observed <= window - 1 = {window - 1}, so each window holds a held-out point."
        )
    if extrapolate < 1:
        raise UserError(f"data.args.extrapolate must be at least 1 grid point, not {extrapolate}.")
    if draws < 1:
        raise UserError(f"data.args.draws must be at least 1, not {draws}.")
    if noise < 0:
        raise UserError(f"data.args.noise must be non-negative, not {noise}.")
    length = window + extrapolate
    g = torch.Generator().manual_seed(data_seed)
    info: dict[str, Any] = {
        "kind": "irregular_series",
        "series": series,
        "window": window,
        "observed": observed,
        "observed_min": observed_min,
        "extrapolate": extrapolate,
        "time_step": 1.0 / (window - 1),
        "draws": draws,
    }
    if series == "sine":
        if n < 10:
            raise UserError(f"data.args.n must be at least 10 sine waves, not {n}.")
        waves = sine_waves(n, length, window, noise, g)
        n_val = n_test = n // 10
        parts = {"train": waves[: n - n_val - n_test], "val": waves[n - n_val - n_test : n - n_test],
                 "test": waves[n - n_test :]}  # fmt: skip
        info.update(target_mean=0.0, target_std=1.0, noise=noise, n=n)
    else:
        from archzoo.data.timeseries import _statsmodels

        values, stamps = _statsmodels("sunspots")
        s = torch.tensor(values, dtype=torch.float32)
        if min(val_len, test_len) < length:
            raise UserError(
                f"data.args.val_len ({val_len}) and test_len ({test_len}) must each hold a window of "
                f"window + extrapolate = {length} years."
            )
        spans = chronological_spans(len(s), val_len, test_len)
        if spans[0][1] < length + 1:
            raise UserError(
                f"The sunspot series leaves {spans[0][1]} training years, too few for {length}-year windows."
            )
        train_end = spans[0][1]
        mean, std = float(s[:train_end].mean()), float(s[:train_end].std())
        z = (s - mean) / std  # the training span's statistics only
        parts, starts = {}, {}
        for name, (a, b) in zip(("train", "val", "test"), spans, strict=True):
            parts[name], starts[name] = _windows(z, a, b, length)
        info.update(target_mean=mean, target_std=std, spans=[list(sp) for sp in spans],
                    window_starts=starts, years=[stamps[0], stamps[-1]])  # fmt: skip
    splits = {}
    for name, w in parts.items():
        w = w.repeat_interleave(draws, dim=0)  # (M * draws, w + e): each window subsampled `draws` times
        splits[name] = TensorSplit(*subsample(w, window, extrapolate, observed, observed_min, g))
    return DataBundle(splits["train"], splits["val"], splits["test"], info)
