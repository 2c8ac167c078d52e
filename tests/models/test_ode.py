"""ODE-RNN and GRU-Δt: the adjoint's gradients, padding, batching, the time change of variables."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models.ode import ODERNN, GRUDelta, events


def _batch(b: int = 3, k: int = 5, q: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    obs_t = torch.rand(b, k, generator=g, dtype=torch.float64).sort(1).values
    obs_x = torch.randn(b, k, generator=g, dtype=torch.float64)
    obs_m = torch.ones(b, k, dtype=torch.float64)
    q_t = 1.5 * torch.rand(b, q, generator=g, dtype=torch.float64)
    return obs_t, obs_x, obs_m, q_t


def test_events_merge_in_time_order_with_queries_first_and_padding_last() -> None:
    obs_t = torch.tensor([[0.2, 0.5, 0.0]])
    obs_x = torch.tensor([[1.0, 2.0, 9.0]])
    obs_m = torch.tensor([[1.0, 1.0, 0.0]])
    q_t = torch.tensor([[0.5, 0.9, 0.0]])
    ev = events(obs_t, obs_x, obs_m, q_t, torch.tensor([[True, True, False]]))
    # Events: obs 0.2, query 0.5 (before the observation at the same time), obs 0.5, query 0.9, 2 pads.
    assert torch.allclose(ev["dt"], torch.tensor([[0.0, 0.3, 0.0, 0.4, 0.0, 0.0]]))
    assert ev["x"].tolist() == [[1.0, 0.0, 2.0, 0.0, 0.0, 0.0]]
    assert ev["m"].tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    assert ev["query_pos"][0, :2].tolist() == [1, 3]


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_adjoint_gradients_equal_backprop_through_the_solver(method: str) -> None:
    torch.manual_seed(0)
    model = ODERNN(hidden_size=6, ode_units=8, method=method, rtol=1e-8, atol=1e-9, steps=2).double()
    batch = _batch()
    grads = []
    for adjoint in (False, True):
        model.adjoint = adjoint
        model.zero_grad()
        model(*batch).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


@pytest.mark.parametrize("cls", [ODERNN, GRUDelta])
def test_padding_changes_nothing_and_samples_do_not_see_each_other(cls: type) -> None:
    torch.manual_seed(0)
    model = cls(hidden_size=6).double().eval()
    obs_t, obs_x, obs_m, q_t = _batch()
    with torch.no_grad():
        full = model(obs_t, obs_x, obs_m, q_t)
        assert full.shape == (3, 4)
        # Two more observation slots and one more query slot, all padding with junk in them.
        pad_t = torch.cat([obs_t, torch.rand(3, 2, dtype=torch.float64)], 1)
        pad_x = torch.cat([obs_x, 5 + torch.rand(3, 2, dtype=torch.float64)], 1)
        pad_m = torch.cat([obs_m, torch.zeros(3, 2, dtype=torch.float64)], 1)
        pq_t = torch.cat([q_t, torch.full((3, 1), 0.3, dtype=torch.float64)], 1)
        pq_v = torch.cat([torch.ones(3, 4, dtype=torch.bool), torch.zeros(3, 1, dtype=torch.bool)], 1)
        padded = model(pad_t, pad_x, pad_m, pq_t, pq_v)
        assert torch.allclose(padded[:, :4], full, atol=1e-10)
        # One sample alone gives what it gets in the batch (each sample keeps its own times).
        alone = model(obs_t[1:2], obs_x[1:2], obs_m[1:2], q_t[1:2])
        assert torch.allclose(alone, full[1:2], atol=1e-10)


def test_the_time_change_of_variables_composes_gaps() -> None:
    """Evolving 0.3 then 0.2 (through a query at 0.3) equals evolving 0.5 at once."""
    torch.manual_seed(0)
    model = ODERNN(hidden_size=5, ode_units=7, method="dopri5", rtol=1e-9, atol=1e-10, time_step=0.1).double()
    obs_t, obs_x, obs_m = torch.tensor([[0.1]]).double(), torch.tensor([[0.7]]).double(), torch.ones(1, 1).double()
    with torch.no_grad():
        two = model(obs_t, obs_x, obs_m, torch.tensor([[0.4, 0.6]]).double())
        one = model(obs_t, obs_x, obs_m, torch.tensor([[0.6]]).double())
    assert torch.allclose(two[:, 1], one[:, 0], atol=1e-7)
    assert not torch.allclose(two[:, 0], one[:, 0], atol=1e-4)  # the state does move along the gap


def test_the_baseline_reads_the_time_gaps() -> None:
    torch.manual_seed(0)
    model = GRUDelta(hidden_size=6).double()
    obs_t, obs_x, obs_m, q_t = _batch()
    with torch.no_grad():
        a = model(obs_t, obs_x, obs_m, q_t)
        b = model(obs_t * 0.5, obs_x, obs_m, q_t * 0.5)
    assert not torch.allclose(a, b)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(UserError, match="method"):
        ODERNN(method="bogus")
    with pytest.raises(UserError, match="steps"):
        ODERNN(steps=0)
    with pytest.raises(UserError, match="time_step"):
        GRUDelta(time_step=0.0)
