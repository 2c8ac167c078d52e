"""The written-out cells and Recurrent against torch's fused layers: outputs, states, gradients, state dicts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from archzoo.errors import UserError
from archzoo.layers.recurrent import ElmanCell, GRUCell, LSTMCell, Recurrent, reverse_within

ATOL = 1e-5
FUSED = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "rnn_relu": nn.RNN}


def _pair(kind: str, num_layers: int, bidirectional: bool, dropout: float = 0.0) -> tuple[nn.Module, Recurrent]:
    """torch's layer and ours, ours with torch's weights."""
    torch.manual_seed(0)
    relu = kind == "rnn_relu"
    mode = "rnn" if relu else kind
    extra = {"nonlinearity": "relu"} if relu else {}
    ref = FUSED[kind](6, 5, num_layers, batch_first=True, bidirectional=bidirectional, dropout=dropout, **extra)
    ours = Recurrent(mode, 6, 5, num_layers, dropout=dropout, bidirectional=bidirectional, **extra)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def _states(s: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (s,) if isinstance(s, torch.Tensor) else tuple(s)


def _initial(kind: str, num_layers: int, bidirectional: bool, b: int, requires_grad: bool = True):
    g = torch.Generator().manual_seed(1)
    ld = num_layers * (2 if bidirectional else 1)
    h = (0.5 * torch.randn(ld, b, 5, generator=g)).requires_grad_(requires_grad)
    if kind != "lstm":
        return h
    return h, (0.5 * torch.randn(ld, b, 5, generator=g)).requires_grad_(requires_grad)


@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "rnn_relu"])
def test_recurrent_matches_torch_outputs_states_and_gradients(
    kind: str, num_layers: int, bidirectional: bool, with_state: bool
) -> None:
    ref, ours = _pair(kind, num_layers, bidirectional)
    x = torch.randn(3, 7, 6, generator=torch.Generator().manual_seed(2))
    results = []
    for m in (ref, ours):
        xi = x.clone().requires_grad_(True)
        s0 = _initial(kind, num_layers, bidirectional, 3) if with_state else None
        out, state = m(xi, s0)
        # A loss that weighs every output and every final state differently, so each gradient path counts.
        w = torch.linspace(-1, 1, out.numel()).view_as(out)
        loss = (out * w).sum() + sum((s * (i + 2)).sum() for i, s in enumerate(_states(state)))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters()}
        s_grads = [s.grad for s in _states(s0)] if with_state else []
        results.append((out, _states(state), xi.grad, grads, s_grads))
    (o1, s1, gx1, gp1, gs1), (o2, s2, gx2, gp2, gs2) = results
    assert o2.shape == o1.shape == (3, 7, 5 * (2 if bidirectional else 1))
    torch.testing.assert_close(o2, o1, atol=ATOL, rtol=0)
    assert len(s1) == len(s2)
    for a, b in zip(s2, s1, strict=True):
        assert a.shape == b.shape == (num_layers * (2 if bidirectional else 1), 3, 5)
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(gx2, gx1, atol=ATOL, rtol=0)
    assert gp1.keys() == gp2.keys()
    for name in gp1:
        torch.testing.assert_close(gp2[name], gp1[name], atol=ATOL, rtol=0, msg=name)
    for a, b in zip(gs2, gs1, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_state_dicts_load_both_ways(kind: str, bidirectional: bool) -> None:
    ref, ours = _pair(kind, 2, bidirectional)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert ours.state_dict()[k].shape == v.shape, k
    # Ours into a fresh torch layer: it then computes what ours computes.
    fresh = FUSED[kind](6, 5, 2, batch_first=True, bidirectional=bidirectional)
    torch.manual_seed(5)
    ours.reset_parameters()
    fresh.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 4, 6)
    torch.testing.assert_close(ours(x)[0], fresh(x)[0], atol=ATOL, rtol=0)
    if bidirectional:
        assert "weight_hh_l1_reverse" in ours.state_dict()


def test_no_bias_layout_matches_torch() -> None:
    ref = nn.GRU(4, 3, 2, bias=False, batch_first=True)
    ours = Recurrent("gru", 4, 3, 2, bias=False)
    assert (
        list(ours.state_dict())
        == list(ref.state_dict())
        == [
            "weight_ih_l0",
            "weight_hh_l0",
            "weight_ih_l1",
            "weight_hh_l1",
        ]
    )
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 4)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("ours_cls", "ref_cls", "kwargs"),
    [
        (ElmanCell, nn.RNNCell, {}),
        (ElmanCell, nn.RNNCell, {"nonlinearity": "relu"}),
        (LSTMCell, nn.LSTMCell, {}),
        (GRUCell, nn.GRUCell, {}),
    ],
)
def test_cells_match_torch_cells(ours_cls, ref_cls, kwargs) -> None:
    torch.manual_seed(0)
    ref, ours = ref_cls(6, 5, **kwargs), ours_cls(6, 5, **kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 6)
    state = (torch.randn(4, 5), torch.randn(4, 5)) if ref_cls is nn.LSTMCell else torch.randn(4, 5)
    for s in (None, state):
        a, b = ref(x, s), ours(x, s)
        for u, v in zip(_states(b), _states(a), strict=True):
            torch.testing.assert_close(u, v, atol=ATOL, rtol=0)


def test_eval_dropout_equals_torch() -> None:
    ref, ours = _pair("lstm", 3, True, dropout=0.5)
    ref.eval(), ours.eval()
    x = torch.randn(2, 6, 6)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=ATOL, rtol=0)


def test_train_dropout_acts_between_layers_only() -> None:
    torch.manual_seed(0)
    # Dropout 1 - eps drops (almost surely) every input of the second layer: it then sees zeros,
    # and so computes what a second layer given zeros computes; the first layer is untouched.
    eps = 1e-7
    two = Recurrent("gru", 6, 5, 2, dropout=1.0 - eps).train()
    x = torch.randn(3, 4, 6)
    out, h = two(x)
    one = Recurrent("gru", 6, 5, 1)
    one.load_state_dict({k: v for k, v in two.state_dict().items() if "_l0" in k})
    _, h_first = one(x)
    torch.testing.assert_close(h[0], h_first[0], atol=ATOL, rtol=0)  # no dropout into the first layer
    top = Recurrent("gru", 5, 5, 1)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in two.state_dict().items() if "_l1" in k})
    out_zeros, _ = top(torch.zeros(3, 4, 5))
    torch.testing.assert_close(out, out_zeros, atol=ATOL, rtol=0)  # the second layer read zeros
    # Nothing after the last layer: a single layer in training is deterministic and equals eval.
    single = Recurrent("gru", 6, 5, 1, dropout=0.9)
    torch.testing.assert_close(single.train()(x)[0], single.eval()(x)[0], atol=0, rtol=0)


def test_lengths_match_packed_torch() -> None:
    for kind in ("lstm", "gru", "rnn"):
        ref, ours = _pair(kind, 2, True)
        x = torch.randn(4, 7, 6)
        lengths = torch.tensor([3, 7, 1, 5])
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out_p, s_ref = ref(packed)
        out_ref, _ = pad_packed_sequence(out_p, batch_first=True, total_length=7)
        out, s = ours(x, lengths=lengths)
        torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)
        for a, b in zip(_states(s), _states(s_ref), strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_reverse_within_is_an_involution() -> None:
    x = torch.arange(12.0).view(4, 3, 1)  # (T, B, 1)
    lengths = torch.tensor([4, 2, 1])
    r = reverse_within(x, lengths)
    assert r[:, 0, 0].tolist() == [9.0, 6.0, 3.0, 0.0]
    assert r[:, 1, 0].tolist() == [4.0, 1.0, 7.0, 10.0]
    assert r[:, 2, 0].tolist() == [2.0, 5.0, 8.0, 11.0]
    torch.testing.assert_close(reverse_within(r, lengths), x)
    torch.testing.assert_close(reverse_within(x, None), x.flip(0))


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UserError, match="mode"):
        Recurrent("transformer", 3, 4)
    with pytest.raises(UserError, match="nonlinearity"):
        Recurrent("rnn", 3, 4, nonlinearity="gelu")
    with pytest.raises(UserError, match="nonlinearity"):
        ElmanCell(3, 4, nonlinearity="gelu")
    with pytest.raises(UserError, match="num_layers"):
        Recurrent("gru", 3, 4, num_layers=0)
    with pytest.raises(UserError, match=r"\(B, T, F\)"):
        Recurrent("gru", 3, 4)(torch.randn(5, 3))
