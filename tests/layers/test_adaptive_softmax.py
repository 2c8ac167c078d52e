"""The written-out adaptive softmax equals torch's AdaptiveLogSoftmaxWithLoss and runs under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers.adaptive_softmax import AdaptiveSoftmax


def _pair() -> tuple[AdaptiveSoftmax, nn.AdaptiveLogSoftmaxWithLoss]:
    torch.manual_seed(0)
    ref = nn.AdaptiveLogSoftmaxWithLoss(16, 50, [10, 30], div_value=2.0)
    ours = AdaptiveSoftmax(16, 50, [10, 30], div_value=2.0)
    ours.load_state_dict(ref.state_dict())  # the same parameter names and shapes
    return ours, ref


def test_equals_torchs_adaptive_softmax_forward_and_gradients() -> None:
    ours, ref = _pair()
    x = torch.randn(40, 16, requires_grad=True)
    y = torch.cat([torch.arange(50), torch.randint(0, 50, (40 - 50 % 40,))])[:40]  # every cluster hit
    y[:3] = torch.tensor([0, 25, 49])
    nll = ours.nll(x, y)
    want = -ref(x, y).output
    torch.testing.assert_close(nll, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.log_prob(x), ref.log_prob(x), atol=1e-5, rtol=0)
    (g_ours,) = torch.autograd.grad(nll.sum(), x)
    (g_ref,) = torch.autograd.grad(want.sum(), x)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-5, rtol=0)
    grads = torch.autograd.grad(ours.nll(x, y).mean(), list(ours.parameters()))
    ref_grads = torch.autograd.grad(-ref(x, y).output.mean(), list(ref.parameters()))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_is_a_distribution_and_runs_under_bf16_autocast() -> None:
    ours, _ = _pair()
    x = torch.randn(7, 16)
    torch.testing.assert_close(ours.log_prob(x).exp().sum(1), torch.ones(7), atol=1e-5, rtol=0)
    y = torch.tensor([0, 9, 10, 29, 30, 49, 5])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = ours.nll(x, y)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ours.nll(x, y), atol=0.05, rtol=0.02)  # bf16 matmuls, close
    # a batch whose targets all sit in the shortlist touches no tail
    assert ours.nll(x, torch.zeros(7, dtype=torch.long)).shape == (7,)


def test_a_tied_shortlist_equals_the_untied_head_holding_the_same_rows() -> None:
    ours, _ = _pair()
    tied = AdaptiveSoftmax(16, 50, [10, 30], div_value=2.0, tie_shortlist=True)
    shared = ours.head.weight[:10].detach().clone()  # (10, 16): the rows an embedding would hold
    with torch.no_grad():
        tied.head.weight.copy_(ours.head.weight[10:])  # the 2 cluster rows
        for a, b in zip(tied.tail.parameters(), ours.tail.parameters(), strict=True):
            a.copy_(b)
    x, y = torch.randn(9, 16), torch.tensor([0, 9, 10, 29, 30, 49, 5, 12, 40])
    torch.testing.assert_close(tied.nll(x, y, shared), ours.nll(x, y), atol=1e-6, rtol=0)
    torch.testing.assert_close(tied.log_prob(x, shared), ours.log_prob(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="shortlist_weight"):
        tied.nll(x, y)


def test_bad_cutoffs_and_widths_are_refused() -> None:
    for bad in ([], [30, 10], [10, 50], [0, 10]):
        with pytest.raises(UserError, match="cutoffs"):
            AdaptiveSoftmax(16, 50, bad)
    with pytest.raises(UserError, match="div_value"):
        AdaptiveSoftmax(8, 50, [10, 30], div_value=4.0)
    with pytest.raises(UserError, match="div_value"):
        AdaptiveSoftmax(8, 50, [10], div_value=0.5)
