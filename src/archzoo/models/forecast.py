r"""Recurrent forecasters: read a window of past values, forecast the next ``horizon`` at once.

A direct multi-step forecaster (Taieb et al. 2012, the "direct" strategy) maps the
window :math:`x_{t-L+1..t}` to :math:`\hat y_{t+1..t+H}` in one pass: an LSTM or GRU
reads the window, and a linear layer maps its last hidden state to the :math:`H`
forecasts, so errors of earlier steps are not fed back into later ones.

.. math::
    h_t = \mathrm{RNN}(x_{t-L+1}, \dots, x_t), \qquad \hat y_{t+1..t+H} = W h_t + b \;[+\, A x_{t-L+1..t}]

With ``skip=True`` a linear map :math:`A` of the window itself is added (an autoregressive
part beside the recurrent one, as in LSTNet, Lai et al. 2018): on a short seasonal series it
can carry the last seasons forward, and the LSTM learns what they miss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from archzoo.registry import register_model


class RNNForecaster(nn.Module):
    """An LSTM/GRU over a window of a (standardised) series and a linear head for the horizon.

    Args:
        input_len: window length :math:`L` (its example input's length).
        horizon: forecasts per window :math:`H`.
        hidden_size: recurrent width (default 64).
        num_layers: stacked layers (default 1).
        cell: ``lstm`` or ``gru`` (default ``lstm``).
        dropout: between stacked layers (default 0).
        skip: add a linear map of the window to the forecasts (default False).
        norm: ``"none"`` (default), ``"last"`` or ``"mean"``: subtract each window's last value
            (or its mean) from the window and add it back to the forecasts, so the network
            learns the shape of what follows rather than the series' level (instance
            normalisation without the affine part, as in RevIN, Kim et al. 2022,
            https://openreview.net/forum?id=cGDAkQo1C0p). With a trend, every training
            window lies below the test span's level; relative to its own level, it does not.

    Shapes:
        input :math:`(B, L)` (one variable) or :math:`(B, L, F)`; output :math:`(B, H)`.
    """

    def __init__(
        self, input_len: int, horizon: int, hidden_size: int = 64, num_layers: int = 1, cell: str = "lstm",
        dropout: float = 0.0, features: int = 1, skip: bool = False, norm: str = "none",
    ) -> None:  # fmt: skip
        super().__init__()
        if norm not in NORMS:
            from archzoo.errors import UserError

            raise UserError(f"model.args.norm must be one of {', '.join(NORMS)}, got '{norm}'.")
        if norm != "none" and features != 1:
            from archzoo.errors import UserError

            raise UserError(f"model.args.norm={norm} needs a series of one variable, got {features} features.")
        self.norm = norm
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}.get(cell)
        if rnn is None:
            from archzoo.errors import UserError

            raise UserError(f"model.args.cell must be lstm or gru, got '{cell}'.")
        self.input_len, self.horizon, self.features = input_len, horizon, features
        self.rnn = rnn(features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, horizon)
        self.skip = nn.Linear(input_len * features, horizon) if skip else None

    def forward_features(self, x: Tensor) -> Tensor:
        """The last hidden state of the top layer, :math:`(B, \\text{hidden})`."""
        if x.dim() == 2:
            x = x.unsqueeze(-1)  # (B, L, 1)
        out, _ = self.rnn(x)  # (B, L, hidden)
        return out[:, -1]

    def level(self, x: Tensor) -> Tensor:
        """The level ``norm`` takes off each window and puts back on its forecasts, :math:`(B, 1)`."""
        if self.norm == "none":
            return x.new_zeros(x.shape[0], 1)
        flat = x.reshape(x.shape[0], -1)  # (B, L): one variable
        return flat[:, -1:] if self.norm == "last" else flat.mean(1, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        level = self.level(x)  # (B, 1)
        x = x - (level if x.dim() == 2 else level.unsqueeze(-1))
        out = self.head(self.forward_features(x))  # (B, H)
        if self.skip is not None:
            out = out + self.skip(x.flatten(1))  # the autoregressive part
        return out + level

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, ...]:
        """A window of standard-normal values, :math:`(B, L)`."""
        g = torch.Generator().manual_seed(0)
        shape = (batch_size, self.input_len) if self.features == 1 else (batch_size, self.input_len, self.features)
        return (torch.randn(*shape, generator=g).to(self.head.weight.device),)


#: The window normalisations of :class:`RNNForecaster`.
NORMS = ("none", "last", "mean")


@register_model("rnn_forecaster")
def rnn_forecaster(
    in_features: int = 12,
    out_features: int = 1,
    hidden_size: int = 64,
    num_layers: int = 1,
    cell: str = "lstm",
    dropout: float = 0.0,
    skip: bool = False,
    norm: str = "none",
) -> RNNForecaster:
    """An LSTM (by default) direct forecaster; ``in_features`` (the window) and ``out_features`` (the horizon)
    come from the series dataset."""
    return RNNForecaster(in_features, out_features, hidden_size, num_layers, cell, dropout, skip=skip, norm=norm)
