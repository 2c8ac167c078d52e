"""Graph regression and classification on PyG batches: graphs counted, metrics in original units, ROC-AUC."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from archzoo.errors import UserError
from archzoo.registry import create_task


class GraphSum(nn.Module):
    """A graph's output: the sum of its nodes' first feature (and its negative, for two logits)."""

    def __init__(self, logits: bool = False) -> None:
        super().__init__()
        self.logits = logits
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, batch: Batch) -> torch.Tensor:
        from torch_geometric.nn import global_add_pool

        s = global_add_pool(batch.x[:, :1], batch.batch, size=batch.num_graphs) * self.w  # (G, 1)
        return torch.cat([-s, s], 1) if self.logits else s


def _batch(values: list[list[float]], ys: list[float], long: bool = False) -> Batch:
    graphs = []
    for v, y in zip(values, ys, strict=True):
        n = len(v)
        ei = torch.stack([torch.arange(n), torch.arange(n).roll(1)])
        yt = torch.tensor([int(y)]) if long else torch.tensor([y])
        graphs.append(Data(x=torch.tensor(v).reshape(n, 1), edge_index=ei, y=yt))
    return Batch.from_data_list(graphs)


def test_graph_regression_counts_graphs_and_reports_original_units(step_context: type) -> None:
    task = create_task("molecule_regression")
    model = GraphSum()
    task.setup(model, {"target_mean": 10.0, "target_std": 2.0}, torch.device("cpu"))
    # 3 graphs, 8 nodes; standardised predictions 1, 2, 3 against targets 1, 2, 1.
    b = _batch([[0.5, 0.5], [1.0, 0.5, 0.5], [1.0, 1.0, 1.0]], [1.0, 2.0, 1.0])
    assert task.count(b) == 3
    logs = task.training_step(model, b, step_context(model))
    assert torch.isfinite(logs["loss"])
    model.w.data.fill_(1.0)
    task.eval_step(model, b, "val")
    m = task.compute("val")
    # Original units: predictions 12, 14, 16 against 12, 14, 12: errors 0, 0, 4.
    assert m["val/rmse"] == pytest.approx((16 / 3) ** 0.5, abs=1e-5)
    assert m["val/mae"] == pytest.approx(4 / 3, abs=1e-5)
    assert m["val/loss"] == pytest.approx(4 / 3, abs=1e-5)  # MSE on the standardised scale
    # R² in original units: 1 - SSE / SST with targets 12, 14, 12 (mean 12.667).
    sst = 2 * (2 / 3) ** 2 + (4 / 3) ** 2
    assert m["val/r2"] == pytest.approx(1 - 16 / sst, abs=1e-4)
    pred = task.predict(model, b)
    torch.testing.assert_close(pred.reshape(-1), torch.tensor([12.0, 14.0, 16.0]))


def test_tuple_regression_is_unchanged() -> None:
    task = create_task("regression")
    model = nn.Linear(2, 1)
    task.setup(model, {}, torch.device("cpu"))
    x, y = torch.randn(5, 2), torch.randn(5)
    assert task.count((x, y)) == 5
    loss, _ = task.loss(model, (x, y))
    torch.testing.assert_close(loss, ((model(x).reshape(-1) - y) ** 2).mean())


def test_graph_classification_reports_roc_auc() -> None:
    from sklearn.metrics import roc_auc_score

    task = create_task("molecule_classification")
    model = GraphSum(logits=True)
    task.setup(model, {"num_classes": 2}, torch.device("cpu"))
    values = [[0.1], [0.4, 0.1], [-0.2], [0.3], [1.0], [-1.0, 0.2]]
    ys = [0, 1, 0, 0, 1, 1]
    b = _batch(values, ys, long=True)
    assert task.count(b) == 6
    task.eval_step(model, b, "test")
    m = task.compute("test")
    scores = [sum(v) for v in values]
    assert m["test/roc_auc"] == pytest.approx(roc_auc_score(ys, scores), abs=1e-6)
    assert m["test/acc"] == pytest.approx(sum((s > 0) == bool(y) for s, y in zip(scores, ys, strict=True)) / 6)


def test_roc_auc_of_a_split_with_one_class_is_nan() -> None:
    import math

    task = create_task("molecule_classification")
    model = GraphSum(logits=True)
    task.setup(model, {"num_classes": 2}, torch.device("cpu"))
    task.eval_step(model, _batch([[0.1], [0.4]], [1, 1], long=True), "val")
    m = task.compute("val")
    assert math.isnan(m["val/roc_auc"]) and m["val/acc"] == 1.0


def test_graph_classification_is_binary_only() -> None:
    task = create_task("molecule_classification")
    with pytest.raises(UserError, match="binary"):
        task.setup(GraphSum(logits=True), {"num_classes": 3}, torch.device("cpu"))


def test_predict_refuses_a_run_without_molecules_and_bad_smiles() -> None:
    from archzoo.data.molecules import FEATURISER_VERSION

    task = create_task("molecule_regression")
    with pytest.raises(UserError, match="not trained on molecules"):
        task.read_inputs(["CCO"], {"kind": "graphs"})
    info = {"molecules": True, "featuriser_version": FEATURISER_VERSION}
    with pytest.raises(UserError, match="cannot parse the SMILES 'C1CC'"):
        task.read_inputs(["CCO", "C1CC"], info)
    batch = task.read_inputs(["CCO", "c1ccccc1O"], info)
    assert batch.num_graphs == 2 and batch.num_nodes == 10
    lines = task.describe(torch.tensor([[1.5], [-2.25]]), ["CCO", "c1ccccc1O"], info)
    assert lines == ["CCO\t1.5000", "c1ccccc1O\t-2.2500"]
