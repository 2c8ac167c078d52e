"""The irregular_series dataset: subsampling, determinism, chronological windows and train-only scaling."""

from __future__ import annotations

import pytest
import torch

from archzoo.data.irregular import irregular_series
from archzoo.errors import UserError


def _small(**kw: object) -> dict[str, object]:
    return {"window": 12, "observed": 6, "observed_min": 3, "extrapolate": 4, "n": 30, **kw}


def test_each_window_splits_into_observations_and_queries() -> None:
    b = irregular_series("sine", **_small())
    obs_t, obs_x, obs_m, q_t, q_y, q_kind = b.train.tensors
    assert obs_t.shape == (24, 6) and q_t.shape == (24, 12 - 3 + 4) and q_kind.dtype == torch.int64
    grid = torch.arange(16) / 11
    for i in range(len(b.train)):
        m, kind = obs_m[i] > 0, q_kind[i]
        k = int(m.sum())
        assert 3 <= k <= 6 and bool(m[:k].all()) and not bool(m[k:].any())  # padding at the end
        t_obs = obs_t[i, :k]
        assert bool((t_obs[1:] > t_obs[:-1]).all())
        t_int, t_ext = q_t[i][kind == 1], q_t[i][kind == 2]
        # Observed and interpolation points are the window's grid, disjoint; extrapolation is after it.
        together = torch.cat([t_obs, t_int]).sort().values
        assert torch.allclose(together, grid[:12])
        assert torch.allclose(t_ext, grid[12:])
        assert bool((q_t[i][kind == 0] == 0).all()) and bool((obs_x[i, k:] == 0).all())
    assert b.info["time_step"] == pytest.approx(1 / 11)


def test_the_data_seed_alone_fixes_the_data() -> None:
    a, b = irregular_series("sine", **_small()), irregular_series("sine", **_small())
    c = irregular_series("sine", **_small(data_seed=1))
    assert all(torch.equal(x, y) for x, y in zip(a.test.tensors, b.test.tensors, strict=True))
    assert not torch.equal(a.test.tensors[1], c.test.tensors[1])


def test_sunspot_windows_are_chronological_and_scaled_by_the_training_span() -> None:
    from archzoo.data.timeseries import _statsmodels

    b = irregular_series("sunspots", window=20, observed=8, observed_min=5, extrapolate=5, val_len=40, test_len=40)
    raw = torch.tensor(_statsmodels("sunspots")[0])
    (a0, a1), (v0, v1), (t0, t1) = b.info["spans"]
    assert (a1, v1, t1) == (229, 269, 309)
    starts = b.info["window_starts"]
    length = 25
    assert max(starts["train"]) + length <= a1 <= min(starts["val"])
    assert max(starts["val"]) + length <= v1 <= min(starts["test"]) and max(starts["test"]) + length == t1
    assert len(b.test) == len(starts["test"]) == 40 - length + 1
    # The training span's statistics alone.
    assert b.info["target_mean"] == pytest.approx(float(raw[:a1].mean()), rel=1e-5)
    assert b.info["target_std"] == pytest.approx(float(raw[:a1].std()), rel=1e-5)
    assert abs(b.info["target_mean"] - float(raw.mean())) > 1.0
    # The last test window's extrapolation targets are the last 5 years, back in the series' units.
    q_y, q_kind = b.test.tensors[4][-1], b.test.tensors[5][-1]
    back = q_y[q_kind == 2] * b.info["target_std"] + b.info["target_mean"]
    assert torch.allclose(back, raw[-5:].float(), atol=1e-3)


def test_draws_subsample_each_window_again() -> None:
    b = irregular_series("sunspots", window=20, observed=8, extrapolate=5, val_len=40, test_len=40, draws=3)
    assert len(b.test) == 3 * 16
    t = b.test.tensors[0]
    assert not torch.equal(t[0], t[1])  # the same window, other points


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"series": "tides"}, "series must be one of sine, sunspots"),
        ({"observed": 12}, "observed_min"),
        ({"observed_min": 0}, "observed_min"),
        ({"observed": 4, "observed_min": 5}, "observed_min"),
        ({"extrapolate": 0}, "extrapolate"),
        ({"draws": 0}, "draws"),
        ({"noise": -1.0}, "noise"),
        ({"n": 5}, "sine waves"),
        ({"series": "sunspots", "val_len": 10}, "val_len"),
        ({"series": "sunspots", "window": 100, "observed": 10, "val_len": 150, "test_len": 150}, "training years"),
    ],
)
def test_bad_arguments_are_refused(kw: dict[str, object], match: str) -> None:
    args = {**_small(), **kw}
    with pytest.raises(UserError, match=match):
        irregular_series(**args)
