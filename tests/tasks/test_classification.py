"""Classification of (x, y) tuples, padded sequences and PyG graph batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data

from archzoo.data.splits import PaddedBatch
from archzoo.models.gnn import gcn_graph
from archzoo.models.rnn import rnn_classifier
from archzoo.registry import create_task

CPU = torch.device("cpu")


def test_classification_of_padded_sequences() -> None:
    torch.manual_seed(0)
    model = rnn_classifier(vocab_size=5, num_classes=2, pad_id=0).eval()
    task = create_task("classification")
    task.setup(model, {"num_classes": 2}, CPU)
    batch = PaddedBatch(
        x=torch.tensor([[1, 2, 3, 0], [4, 4, 0, 0], [1, 1, 1, 1]]),
        lengths=torch.tensor([3, 2, 4]),
        y=torch.tensor([0, 1, 1]),
    )
    assert task.count(batch) == 3
    loss, logs = task.loss(model, batch)
    logits = model(batch)
    torch.testing.assert_close(loss, F.cross_entropy(logits, batch.y))
    torch.testing.assert_close(logs["acc"], (logits.argmax(1) == batch.y).float().mean())
    with torch.no_grad():
        task.eval_step(model, batch, "val")
    out = task.compute("val")
    assert out["val/loss"] == pytest.approx(float(loss.detach()), abs=1e-6)


def test_classification_of_graph_batches() -> None:
    torch.manual_seed(0)
    model = gcn_graph(num_node_features=4, num_classes=3).eval()
    task = create_task("classification")
    task.setup(model, {"num_classes": 3}, CPU)
    graphs = []
    for i, n in enumerate((3, 5, 4)):
        d = Data(x=torch.randn(n, 4), edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor([i]))
        graphs.append(d)
    batch = Batch.from_data_list(graphs)
    assert task.count(batch) == 3
    loss, _ = task.loss(model, batch)
    torch.testing.assert_close(loss, F.cross_entropy(model(batch), batch.y))
    with torch.no_grad():
        task.eval_step(model, batch, "test")
    out = task.compute("test")
    assert 0.0 <= out["test/acc"] <= 1.0 and out["test/loss"] == pytest.approx(float(loss.detach()), abs=1e-6)


def test_classification_of_tuples_is_unchanged() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    task = create_task("classification", label_smoothing=0.1)
    task.setup(model, {"num_classes": 3}, CPU)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    assert task.count((x, y)) == 6
    loss, logs = task.loss(model, (x, y))
    logits = model(x)
    assert torch.equal(loss, F.cross_entropy(logits, y, label_smoothing=0.1))
    assert torch.equal(logs["acc"], (logits.argmax(1) == y).float().mean())


def test_text_inputs_are_read_with_the_runs_tokenizer_into_a_padded_batch() -> None:
    from archzoo.data.tokenizers import CharTokenizer
    from archzoo.errors import UserError

    tok = CharTokenizer.train(["abc"], specials=["<pad>"], fold="ascii")
    info = {"tokenizer": tok, "pad_id": 0, "kind": "sequence", "classes": ["x", "y"]}
    task = create_task("classification")
    batch = task.read_inputs(["ab", "cába"], info)
    assert isinstance(batch, PaddedBatch) and batch.y is None
    assert batch.lengths.tolist() == [2, 4]
    assert batch.x.tolist() == [tok.encode("ab") + [0, 0], tok.encode("caba")]
    model = rnn_classifier(vocab_size=tok.vocab_size, num_classes=2, pad_id=0).eval()
    probs = task.predict(model, batch)
    assert probs.shape == (2, 2)
    lines = task.describe(probs, ["ab", "cába"], info)
    assert lines[0].split("\t")[1] in ("x", "y")
    with pytest.raises(UserError, match="no tokens"):
        task.read_inputs(["1"], info)  # folded away to nothing
