r"""Models of irregularly sampled series: the ODE-RNN and a GRU that reads the time gaps.

**ODE-RNN** (Rubanova, Chen & Duvenaud 2019, *Latent ODEs for Irregularly-Sampled
Time Series*, https://arxiv.org/abs/1907.03907). A hidden state follows a learned
ODE between observations and jumps at each observation through a GRU cell:

.. math::
    h'_i = \mathrm{ODESolve}(f_\theta, h_{i-1}, (t_{i-1}, t_i)), \qquad
    h_i = \begin{cases} \mathrm{GRUCell}(x_i, h'_i) & \text{observed at } t_i \\ h'_i & \text{a query at } t_i \end{cases},
    \qquad \hat x(t_i) = g(h'_i)

with :math:`f_\theta` a small MLP and :math:`g` a read-out MLP. A query inside the
observed span (interpolation) reads the state evolved from the observations
before it; a query after the last observation (extrapolation) reads the state
evolved on by the ODE alone. This is the ODE-RNN (rather than the latent ODE,
whose encoder is an ODE-RNN run backwards): one pass, no sampling, and the same
causal reading as the baseline below, so the two differ only in how the state
crosses a gap: an ODE here, a GRU step with :math:`\Delta t` as input there.

**Batched over samples with their own times.** Each sample's observations and
queries are merged into one time-ordered list of events (padding last). Event
:math:`j` of every sample is reached in the same solver call by the change of
variables :math:`t = t_{j-1} + s\,\Delta t_j`, :math:`s \in [0, 1]`:

.. math::
    \frac{dh}{ds} = c\,\frac{\Delta t_j}{\tau} f_\theta(h), \qquad s: 0 \to 1

with :math:`\Delta t_j` a :math:`(B, 1)` column (zero for padding, which then
stays put), :math:`\tau` the data's grid step (``time_step``) and :math:`c` the
ODE's time per grid step (``time_scale``, 0.05 as in the toy set of Rubanova et
al., 100 points on :math:`[0, 5]`): with :math:`c = 1` the field's initial
:math:`|f_\theta| \approx 0.3` moves the state by that much every grid step, and
training stalls. The Python loop runs over events, never over samples;
:math:`f_\theta` is autonomous (it does not read :math:`t`). ``adjoint=True``
computes gradients with ``torchdiffeq.odeint_adjoint`` (Chen et al. 2018: a second
ODE solved backwards, memory constant in the number of solver steps) instead of
back-propagating through the solver's operations.

**GRU-Δt** (the "RNN with time gaps" baseline of Rubanova et al.): a GRU over the
same events, with input :math:`[x_j m_j, \Delta t_j / \tau, m_j]` (value and mask
zero at a query), the same read-out on its output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_model

METHODS = ("rk4", "euler", "midpoint", "dopri5")


def events(obs_t: Tensor, obs_x: Tensor, obs_m: Tensor, q_t: Tensor, q_valid: Tensor) -> dict[str, Tensor]:
    """Merge observations and queries into one time-ordered list of events per sample.

    Queries come first at equal times (a query at an observation's time reads the state before it),
    padding comes last.

    Returns:
        ``dt`` :math:`(B, E)` gaps to the previous event (0 for the first and for padding), ``x`` and ``m``
        :math:`(B, E)` value and observation mask of each event, and ``query_pos`` :math:`(B, Q)` the
        event index of each query.
    """
    q = q_t.shape[1]
    t = torch.cat([q_t, obs_t], dim=1)  # (B, Q + K): queries first, so a stable sort keeps them first
    valid = torch.cat([q_valid, obs_m > 0], dim=1)
    key = torch.where(valid, t, torch.full_like(t, float("inf")))
    key, order = key.sort(dim=1, stable=True)  # (B, E)
    valid_s = valid.gather(1, order)
    last = torch.where(valid_s, key, torch.full_like(key, -float("inf"))).amax(1, keepdim=True)  # (B, 1)
    t_s = torch.where(valid_s, key, last.clamp(min=0.0).expand_as(key))  # padding holds the last time
    first = t_s[:, :1]
    dt = torch.diff(t_s, dim=1, prepend=first)  # (B, E)
    x = torch.cat([torch.zeros_like(q_t), obs_x * obs_m], dim=1).gather(1, order)
    m = torch.cat([torch.zeros_like(q_t), obs_m], dim=1).gather(1, order)
    query_pos = order.argsort(dim=1)[:, :q]  # (B, Q): where each query went
    return {"dt": dt, "x": x, "m": m, "query_pos": query_pos}


def _readout(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def _example(batch_size: int, device: torch.device) -> tuple[Tensor, ...]:
    """Two samples' worth of irregular observations (the second padded) and queries."""
    g = torch.Generator().manual_seed(0)
    k, q = 6, 5
    obs_t = torch.rand(batch_size, k, generator=g).sort(1).values
    obs_m = torch.ones(batch_size, k)
    obs_m[1::2, -2:] = 0.0  # padding at the end of every other sample
    obs_t, obs_x = obs_t * obs_m, torch.randn(batch_size, k, generator=g) * obs_m
    q_t = torch.rand(batch_size, q, generator=g) * 1.2
    return tuple(a.to(device) for a in (obs_t, obs_x, obs_m, q_t))


class ODEFunc(nn.Module):
    r""":math:`f_\theta(h)`, an MLP with tanh units (the ODE's vector field per grid step)."""

    def __init__(self, hidden: int, units: int, layers: int = 2) -> None:
        super().__init__()
        dims = [hidden] + [units] * (layers - 1) + [hidden]
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            mods.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                mods.append(nn.Tanh())
        self.net = nn.Sequential(*mods)

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        return self.net(h)


class _Gap(nn.Module):
    r"""The field of one event's solve, :math:`\frac{dh}{ds} = \frac{\Delta t}{\tau} f(h)`.

    A module of its own per event (holding its :math:`\Delta t` column), because the adjoint
    calls the field again in the backward pass, when the next events' gaps have been set.
    """

    def __init__(self, func: ODEFunc, scale: Tensor) -> None:
        super().__init__()
        self.func = func
        self.scale = scale  # (B, 1), not a parameter

    def forward(self, s: Tensor, h: Tensor) -> Tensor:
        return self.scale * self.func(s, h)


class ODERNN(nn.Module):
    r"""ODE-RNN: an ODE between observations, a GRU cell at each (see the module docstring).

    Args:
        hidden_size: state width (default 32).
        ode_units: width of :math:`f_\theta`'s hidden layer (default 64).
        ode_layers: linear layers of :math:`f_\theta` (default 2).
        method: ``rk4`` (default), ``euler``, ``midpoint`` (fixed steps) or ``dopri5`` (adaptive).
        steps: fixed solver steps per gap between events (default 1).
        rtol, atol: tolerances of ``dopri5`` (default 1e-3, 1e-4).
        adjoint: gradients by the adjoint method (``odeint_adjoint``) (default False).
        time_step: the data's grid step :math:`\tau` (from the dataset's info; default 1).
        time_scale: the ODE's time per grid step, :math:`c` (default 0.05).

    Shapes:
        - **obs_t, obs_x, obs_m:** :math:`(B, K)` observation times, values and mask (padding 0).
        - **q_t:** :math:`(B, Q)` query times; **q_valid** (optional) :math:`(B, Q)` bool, False for padding.
        - **output:** :math:`(B, Q)` the values predicted at the query times.
    """

    def __init__(
        self, hidden_size: int = 32, ode_units: int = 64, ode_layers: int = 2, method: str = "rk4", steps: int = 1,
        rtol: float = 1e-3, atol: float = 1e-4, adjoint: bool = False, time_step: float = 1.0,
        time_scale: float = 0.05,
    ) -> None:  # fmt: skip
        super().__init__()
        if method not in METHODS:
            raise UserError(f"model.args.method must be one of {', '.join(METHODS)}, not '{method}'.")
        if steps < 1 or ode_layers < 1:
            raise UserError("model.args.steps and model.args.ode_layers must be at least 1.")
        if time_step <= 0 or time_scale <= 0:
            raise UserError(f"model.args.time_step and time_scale must be positive, not {time_step} and {time_scale}.")
        self.hidden_size, self.method, self.steps = hidden_size, method, steps
        self.rtol, self.atol, self.adjoint = rtol, atol, adjoint
        self.time_step, self.time_scale = time_step, time_scale
        self.func = ODEFunc(hidden_size, ode_units, ode_layers)
        self.cell = nn.GRUCell(1, hidden_size)
        self.readout = _readout(hidden_size)

    def _solve(self, h: Tensor, dt: Tensor) -> Tensor:
        """Evolve ``h`` :math:`(B, H)` over each sample's gap ``dt`` :math:`(B,)` in one solver call."""
        import torchdiffeq

        field = _Gap(self.func, (dt * (self.time_scale / self.time_step)).unsqueeze(1))  # (B, 1)
        s = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        kw: dict[str, Any] = {"method": self.method}
        if self.method == "dopri5":
            kw.update(rtol=self.rtol, atol=self.atol)
        elif self.steps > 1:
            kw["options"] = {"step_size": 1.0 / self.steps}
        if self.adjoint:
            return torchdiffeq.odeint_adjoint(field, h, s, adjoint_params=tuple(self.func.parameters()), **kw)[-1]
        return torchdiffeq.odeint(field, h, s, **kw)[-1]

    def forward_features(self, obs_t: Tensor, obs_x: Tensor, obs_m: Tensor, q_t: Tensor,
                         q_valid: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """The state read at every event, before its update, :math:`(B, E, H)`, and each query's event index."""
        q_valid = torch.ones_like(q_t, dtype=torch.bool) if q_valid is None else q_valid
        ev = events(obs_t, obs_x, obs_m, q_t, q_valid)
        dt, x, m = ev["dt"], ev["x"], ev["m"]
        h = obs_x.new_zeros(obs_x.shape[0], self.hidden_size)
        states = []
        for j in range(dt.shape[1]):  # over events, batched over samples
            if j > 0:
                h = self._solve(h, dt[:, j])
            states.append(h)  # the prior state at event j: what a query there reads
            upd = self.cell(x[:, j : j + 1], h)
            h = torch.where(m[:, j : j + 1] > 0, upd, h)
        return torch.stack(states, dim=1), ev["query_pos"]  # (B, E, H), (B, Q)

    def forward(self, obs_t: Tensor, obs_x: Tensor, obs_m: Tensor, q_t: Tensor,
                q_valid: Tensor | None = None) -> Tensor:  # fmt: skip
        states, pos = self.forward_features(obs_t, obs_x, obs_m, q_t, q_valid)
        out = self.readout(states).squeeze(-1)  # (B, E)
        return out.gather(1, pos)  # (B, Q)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, ...]:
        return _example(batch_size, self.readout[0].weight.device)


class GRUDelta(nn.Module):
    r"""A GRU over the events with input :math:`[x m, \Delta t/\tau, m]`, and the same read-out.

    Args:
        hidden_size: GRU width (default 48).
        num_layers: stacked GRU layers (default 1).
        time_step: the data's grid step :math:`\tau` (from the dataset's info; default 1).

    Shapes: as :class:`ODERNN`.
    """

    def __init__(self, hidden_size: int = 48, num_layers: int = 1, time_step: float = 1.0) -> None:
        super().__init__()
        if time_step <= 0:
            raise UserError(f"model.args.time_step must be positive, not {time_step}.")
        self.time_step = time_step
        self.rnn = nn.GRU(3, hidden_size, num_layers, batch_first=True)
        self.readout = _readout(hidden_size)

    def forward_features(self, obs_t: Tensor, obs_x: Tensor, obs_m: Tensor, q_t: Tensor,
                         q_valid: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """The GRU's output at every event, :math:`(B, E, H)`, and each query's event index."""
        q_valid = torch.ones_like(q_t, dtype=torch.bool) if q_valid is None else q_valid
        ev = events(obs_t, obs_x, obs_m, q_t, q_valid)
        inp = torch.stack([ev["x"], ev["dt"] / self.time_step, ev["m"]], dim=-1)  # (B, E, 3)
        out, _ = self.rnn(inp)  # (B, E, H); padding is last, so it changes no earlier output
        return out, ev["query_pos"]

    def forward(self, obs_t: Tensor, obs_x: Tensor, obs_m: Tensor, q_t: Tensor,
                q_valid: Tensor | None = None) -> Tensor:  # fmt: skip
        out, pos = self.forward_features(obs_t, obs_x, obs_m, q_t, q_valid)
        return self.readout(out).squeeze(-1).gather(1, pos)  # (B, Q)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, ...]:
        return _example(batch_size, self.readout[0].weight.device)


@register_model("ode_rnn")
def ode_rnn(
    hidden_size: int = 32,
    ode_units: int = 64,
    ode_layers: int = 2,
    method: str = "rk4",
    steps: int = 1,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    adjoint: bool = False,
    time_step: float = 1.0,
    time_scale: float = 0.05,
) -> ODERNN:
    """ODE-RNN (Rubanova et al. 2019); ``time_step`` comes from the irregular_series dataset."""
    return ODERNN(hidden_size, ode_units, ode_layers, method, steps, rtol, atol, adjoint, time_step, time_scale)


@register_model("gru_dt")
def gru_dt(hidden_size: int = 48, num_layers: int = 1, time_step: float = 1.0) -> GRUDelta:
    """A GRU reading [value, time gap, mask] at each event: the ODE-RNN's baseline."""
    return GRUDelta(hidden_size, num_layers, time_step)
