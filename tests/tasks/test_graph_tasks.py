"""Node classification over the mask of one full graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from archzoo.models.gnn import gcn_node
from archzoo.registry import create_task

CPU = torch.device("cpu")


def _graph() -> Data:
    g = torch.Generator().manual_seed(0)
    n = 8
    src = torch.arange(n)
    ring = torch.stack([torch.cat([src, (src + 1) % n]), torch.cat([(src + 1) % n, src])])
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.bool)
    return Data(x=torch.randn(n, 4, generator=g), edge_index=ring, y=torch.tensor([0, 1, 2, 0, 1, 2, 1, 0]), mask=mask)


def test_node_loss_and_count_cover_the_mask_only() -> None:
    torch.manual_seed(0)
    model = gcn_node(num_node_features=4, num_classes=3).eval()
    task = create_task("node_classification")
    task.setup(model, {"num_classes": 3}, CPU)
    data = _graph()
    count = task.count(data)
    assert isinstance(count, torch.Tensor) and int(count) == 4
    loss, logs = task.loss(model, data)
    logits = model(data)
    torch.testing.assert_close(loss, F.cross_entropy(logits[data.mask], data.y[data.mask]), atol=1e-6, rtol=0)
    acc = (logits[data.mask].argmax(1) == data.y[data.mask]).float().mean()
    torch.testing.assert_close(logs["acc"], acc)
    loss.backward()
    assert model.conv1.lin.weight.grad is not None


def test_node_eval_metrics_over_masked_nodes() -> None:
    torch.manual_seed(0)
    model = gcn_node(num_node_features=4, num_classes=3).eval()
    task = create_task("node_classification")
    task.setup(model, {"num_classes": 3}, CPU)
    data = _graph()
    with torch.no_grad():
        task.eval_step(model, data, "val")
        out = task.compute("val")
        logits = model(data)[data.mask]
    y = data.y[data.mask]
    assert set(out) == {"val/acc", "val/f1", "val/loss"}
    assert out["val/acc"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert out["val/loss"] == pytest.approx(float(F.cross_entropy(logits, y)), abs=1e-6)
    assert task.monitor == "val/acc" and task.mode == "max"
