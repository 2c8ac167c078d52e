"""Graph readouts: each equals its definition computed graph by graph, and none depends on node order."""

from __future__ import annotations

import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers.readout import READOUTS, Readout


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sizes = [3, 1, 5]
    x = torch.randn(sum(sizes), 4, generator=g)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    return x, batch


@pytest.mark.parametrize("name", ["mean", "max", "sum"])
def test_simple_readouts_equal_their_definitions(name: str) -> None:
    x, batch = _batch()
    out = Readout(name, 4)(x, batch, 3)
    for g in range(3):
        h = x[batch == g]
        want = {"mean": h.mean(0), "max": h.max(0).values, "sum": h.sum(0)}[name]
        torch.testing.assert_close(out[g], want)


def test_attention_readout_is_a_gated_softmax_over_each_graphs_nodes() -> None:
    torch.manual_seed(0)
    x, batch = _batch()
    r = Readout("attention", 4)
    out = r(x, batch, 3)
    gate = r.pool.gate_nn
    for g in range(3):
        h = x[batch == g]
        a = gate(h).softmax(0)  # (n, 1)
        torch.testing.assert_close(out[g], (a * h).sum(0), atol=1e-6, rtol=0)


def test_set2set_doubles_the_width_and_runs_its_lstm_steps() -> None:
    torch.manual_seed(0)
    x, batch = _batch()
    r = Readout("set2set", 4, steps=2)
    out = r(x, batch, 3)
    assert r.out_dim == 8 and out.shape == (3, 8)
    # by hand: q* starts at zero; each step an LSTM over q*, attention over the graph's nodes
    lstm = r.pool.lstm
    for g in range(3):
        h = x[batch == g]
        q_star = torch.zeros(1, 8)
        state = (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4))
        for _ in range(2):
            q, state = lstm(q_star.unsqueeze(0), state)
            q = q[0]  # (1, 4)
            a = (h @ q.T).softmax(0)  # (n, 1)
            q_star = torch.cat([q, (a * h).sum(0, keepdim=True)], 1)
        torch.testing.assert_close(out[g], q_star[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", READOUTS)
def test_readouts_ignore_node_order_and_give_empty_graphs_a_row(name: str) -> None:
    torch.manual_seed(0)
    x, batch = _batch()
    r = Readout(name, 4).eval()
    perm = torch.randperm(len(x))
    torch.testing.assert_close(r(x[perm], batch[perm], 3), r(x, batch, 3), atol=1e-5, rtol=0)
    assert r(x, batch, 4).shape == (4, r.out_dim)  # a fourth graph without nodes still gets its row


def test_unknown_readout_is_refused() -> None:
    with pytest.raises(UserError, match="readout"):
        Readout("median", 4)
    with pytest.raises(UserError, match="step"):
        Readout("set2set", 4, steps=0)
