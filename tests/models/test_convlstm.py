"""ConvLSTM: the cell is an LSTM whose maps are convolutions, and the predictor's patch option."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.convlstm import ConvLSTMCell
from archzoo.models.convlstm import convlstm


def test_cell_with_1x1_kernel_is_an_lstm_cell_at_every_pixel() -> None:
    """With a 1×1 kernel each pixel is one nn.LSTMCell step (torch's gate order i, f, g, o)."""
    torch.manual_seed(0)
    cx, ch = 3, 5
    cell = ConvLSTMCell(cx, ch, kernel_size=1)
    ref = torch.nn.LSTMCell(cx, ch)
    w = cell.gates.weight[:, :, 0, 0]  # (4 C_h, C_x + C_h)
    with torch.no_grad():
        ref.weight_ih.copy_(w[:, :cx])
        ref.weight_hh.copy_(w[:, cx:])
        ref.bias_ih.copy_(cell.gates.bias)
        ref.bias_hh.zero_()
    x, h0, c0 = torch.randn(2, cx, 4, 4), torch.randn(2, ch, 4, 4), torch.randn(2, ch, 4, 4)
    h, c = cell(x, (h0, c0))

    def pixels(t: torch.Tensor) -> torch.Tensor:
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])

    h_ref, c_ref = ref(pixels(x), (pixels(h0), pixels(c0)))
    torch.testing.assert_close(pixels(h), h_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(pixels(c), c_ref, atol=1e-6, rtol=0)


def test_state_keeps_the_frame_layout_and_starts_at_zero() -> None:
    cell = ConvLSTMCell(1, 4, kernel_size=3)
    x = torch.rand(2, 1, 8, 8)
    h, c = cell(x)
    assert h.shape == c.shape == (2, 4, 8, 8)
    h2, c2 = cell(x, (torch.zeros_like(h), torch.zeros_like(c)))
    torch.testing.assert_close(h, h2)


def test_patches_are_a_pixel_unshuffle_of_the_frames() -> None:
    """patch=2 runs the recurrence on 2×2 patches stacked as channels and puts the prediction back."""
    torch.manual_seed(0)
    m = convlstm(hidden_channels=[6], patch=2, image_size=8, frames=3).eval()
    assert m.cells[0].gates.in_channels == 4 + 6 and m.head.out_channels == 4
    (x,) = m.example_input(2)
    y = m(x)
    assert y.shape == (2, 1, 8, 8)
    # By hand: the same cell over unshuffled frames, the head, a pixel shuffle, the residual step.
    state = None
    for t in range(x.shape[1]):
        state = m.cells[0](F.pixel_unshuffle(x[:, t], 2), state)
    by_hand = (x[:, -1] + torch.tanh(F.pixel_shuffle(m.head(state[0]), 2))).clamp(0, 1)
    torch.testing.assert_close(y, by_hand, atol=1e-6, rtol=0)
    # An untrained residual model stays close to copying the last frame.
    assert (y - x[:, -1]).abs().max() < 1.0


def test_patch_must_divide_the_frame() -> None:
    with pytest.raises(UserError, match="positive divisor of image_size=32"):
        convlstm(patch=3)
