"""RNNClassifier.forward_padded (no packing, the form archzoo export traces) equals the packed forward."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

from archzoo.data.splits import PaddedBatch
from archzoo.models.rnn import RNNClassifier


def _batch(b: int, lengths: list[int], vocab: int, seed: int) -> PaddedBatch:
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    x = torch.zeros(b, int(lens.max()), dtype=torch.long)  # pad id 0
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(1, vocab, (n,), generator=g)
    return PaddedBatch(x, lens)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pool", ["last", "mean", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_padded_equals_packed(cell: str, pool: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    m = RNNClassifier(
        20, 3, embed_dim=6, hidden_size=5, cell=cell, bidirectional=bidirectional, num_layers=2, pool=pool
    ).eval()
    batch = _batch(4, [7, 1, 4, 7], 20, 1)
    with torch.no_grad():
        torch.testing.assert_close(m.forward_padded(batch.x, batch.lengths), m(batch), atol=1e-6, rtol=0)


def test_cells_impl_is_refused_for_export() -> None:
    assert RNNClassifier(10, 2, impl="cells").export_refusal is not None
    assert RNNClassifier(10, 2).export_refusal is None


def test_onnx_of_the_padded_form_takes_other_lengths(tmp_path) -> None:
    """A bidirectional GRU with embedding width equal to its hidden width (as sms-gru), attention-pooled:
    the ONNX file keeps batch and length dynamic (a fixed length here once broke an Expand)."""
    torch.manual_seed(0)
    m = RNNClassifier(30, 2, embed_dim=8, hidden_size=8, cell="gru", bidirectional=True, pool="attention").eval()

    class Padded(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.m.forward_padded(x, lengths)

    b, s = torch.export.Dim("batch"), torch.export.Dim("seq")
    ex = _batch(5, [9, 3, 9, 6, 2], 30, 2)
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        Padded(),
        (ex.x, ex.lengths),
        str(path),
        dynamo=True,
        dynamic_shapes=({0: b, 1: s}, {0: b}),
        input_names=["x", "lengths"],
        external_data=False,
        verbose=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = _batch(3, [4, 11, 1], 30, 3)
    got = torch.from_numpy(session.run(None, {"x": other.x.numpy(), "lengths": other.lengths.numpy()})[0])
    with torch.no_grad():
        torch.testing.assert_close(got, m(other), atol=1e-5, rtol=0)
