"""The direct forecaster: shapes, the linear skip, and window normalisation that makes it level-free."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models.forecast import rnn_forecaster


def test_forecaster_maps_a_window_to_its_horizon() -> None:
    torch.manual_seed(0)
    m = rnn_forecaster(in_features=12, out_features=5, hidden_size=8, skip=True).eval()
    (x,) = m.example_input(3)
    assert x.shape == (3, 12) and m(x).shape == (3, 5)


@pytest.mark.parametrize("norm", ["last", "mean"])
def test_normalised_forecasts_move_with_the_windows_level(norm: str) -> None:
    torch.manual_seed(0)
    m = rnn_forecaster(in_features=12, out_features=4, hidden_size=8, skip=True, norm=norm).eval()
    x = torch.randn(3, 12)
    with torch.no_grad():
        base, shifted = m(x), m(x + 7.5)
    torch.testing.assert_close(shifted, base + 7.5, atol=1e-5, rtol=0)
    # the level taken off is the window's last value, or its mean
    level = x[:, -1:] if norm == "last" else x.mean(1, keepdim=True)
    torch.testing.assert_close(m.level(x), level)
    # without it the forecasts do not follow the shift
    plain = rnn_forecaster(in_features=12, out_features=4, hidden_size=8).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x + 7.5), plain(x) + 7.5, atol=1e-2)


def test_unknown_norm_is_refused() -> None:
    with pytest.raises(UserError, match="norm"):
        rnn_forecaster(norm="revin")
