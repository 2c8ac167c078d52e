"""archzoo.engine.inspection: gradient, weight, activation and data statistics; gradient checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from archzoo.data.splits import TensorSplit
from archzoo.engine import inspection as ins
from archzoo.errors import UserError

QUIET = ["train.threads=1", "log.progress=none"]


@pytest.fixture(scope="module")
def digits_target() -> ins.Target:
    """digits-mlp built fresh, without dropout so two gradient passes see the same function."""
    return ins.open_target("digits-mlp", [*QUIET, "model.args.dropout=0"])


def test_gradients_equal_those_of_the_tasks_loss(digits_target: ins.Target) -> None:
    t = digits_target
    batches = ins.training_batches(t, 2)
    assert len(batches) == 2 and batches[0][0].shape[0] == 64
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    got = ins.gradient_stats(t.model, t.task, batches, t.device)
    for k, v in t.model.state_dict().items():  # nothing was stepped
        assert torch.equal(v, before[k]), k
    # The reference: the task's loss, back-propagated by hand and averaged over the two batches.
    t.model.zero_grad()
    for b in batches:
        (t.task.loss(t.model, b)[0] / 2).backward()
    params = dict(t.model.named_parameters())
    assert set(got["parameters"]) == set(params)
    for name, row in got["parameters"].items():
        g = params[name].grad
        assert row["max_abs"] == pytest.approx(float(g.abs().max()), rel=1e-5)
        assert row["mean_abs"] == pytest.approx(float(g.abs().mean()), rel=1e-5)
        assert row["warning"] is None
    t.model.zero_grad()
    with torch.no_grad():
        losses = [float(t.task.loss(t.model, b)[0]) for b in batches]
    assert got["loss"] == pytest.approx(sum(losses) / 2, rel=1e-5)
    assert got["warnings"] == []


def test_gradient_warnings_vanishing_and_exploding() -> None:
    t = ins.open_target("digits-mlp", [*QUIET, "model.args.dropout=0"])
    batch = ins.training_batches(t, 1)
    names = {m: n for n, m in t.model.named_modules()}
    first, second = [m for m in t.model.modules() if isinstance(m, nn.Linear)][:2]
    with torch.no_grad():
        first.weight.mul_(1e5)  # pre-activations 1e5 times larger: the head's gradient explodes
    r = ins.gradient_stats(t.model, t.task, batch, t.device)
    assert r["parameters"]["head.weight"]["warning"] == "exploding"
    assert r["parameters"]["head.weight"]["max_abs"] > ins.EXPLODING
    with torch.no_grad():
        first.weight.div_(1e5)
        second.weight.zero_()  # nothing flows back through the second layer
    r = ins.gradient_stats(t.model, t.task, batch, t.device)
    w1 = f"{names[first]}.weight"
    assert r["parameters"][w1]["max_abs"] == 0.0
    assert r["parameters"][w1]["warning"] == "vanishing"
    assert any(w.startswith(f"{w1}: vanishing") for w in r["warnings"])


def test_weight_stats_match_torch() -> None:
    m = nn.Linear(4, 3)
    with torch.no_grad():
        m.weight[0].zero_()
    s = ins.weight_stats(m)
    w = m.weight.detach()
    assert s["weight"]["shape"] == [3, 4]
    assert s["weight"]["mean"] == pytest.approx(float(w.mean()), abs=1e-7)
    assert s["weight"]["std"] == pytest.approx(float(w.std()), abs=1e-7)
    assert s["weight"]["min"] == pytest.approx(float(w.min()))
    assert s["weight"]["max"] == pytest.approx(float(w.max()))
    assert s["weight"]["zeros"] == pytest.approx(4 / 12)


def test_dead_relu_units_and_activation_moments() -> None:
    lin = nn.Linear(2, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        lin.bias.copy_(torch.tensor([0.0, 0.0, -100.0]))  # unit 2 is negative for every input below
    model = nn.Sequential(lin, nn.ReLU())
    x = torch.tensor([[1.0, -1.0], [2.0, -3.0], [-1.0, -2.0]])  # unit 1 is never positive either
    with ins.activation_hooks(model) as stats:
        model(x)
    a = ins.activation_summary(stats)
    assert list(a) == ["0", "1"]
    assert a["1"]["module"] == "ReLU" and a["1"]["calls"] == 1
    assert a["1"]["dead"] == pytest.approx(2 / 3)
    assert a["0"]["dead"] is None  # a Linear has no dead units
    out = lin(x).detach()
    assert a["0"]["mean"] == pytest.approx(float(out.mean()), rel=1e-6)
    assert a["0"]["std"] == pytest.approx(float(out.std(unbiased=False)), rel=1e-6)
    assert not model[0]._forward_hooks  # the hooks are removed afterwards


def test_data_check_counts_nan_inf_labels_and_imbalance(tmp_path: Path) -> None:
    x = torch.tensor([[0.0, 1.0], [2.0, float("nan")], [float("inf"), 3.0], [4.0, 5.0]])
    y = torch.tensor([0, 0, 0, 1])
    r = ins.data_check(TensorSplit(x, y), {"num_classes": 3}, batch_size=2)
    assert r["input_shape"] == [2] and r["examples"] == 4 and r["read"] == "all"
    assert (r["nan"], r["inf"]) == (1, 1)
    finite = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    assert r["mean"] == pytest.approx(2.5)
    assert r["std"] == pytest.approx(float(finite.std(unbiased=False)))
    assert (r["min"], r["max"]) == (0.0, 5.0)
    assert r["labels"]["counts"] == [3, 1, 0]
    assert r["imbalance"] is None  # class 2 is absent
    assert any("no training example" in w for w in r["warnings"])
    assert sum(r["value_histogram"]["counts"]) == 6
    r2 = ins.data_check(TensorSplit(x, y), {"num_classes": 2}, batch_size=2)
    assert r2["imbalance"] == pytest.approx(3.0)
    png = ins.plot_data_check(r2, tmp_path / "d.png", "toy")
    assert Image.open(png).size[0] > 100


def test_inspect_report_and_json(digits_target: ins.Target, tmp_path: Path) -> None:
    r = ins.inspect(digits_target, batches=1)
    assert r["gradients"]["batches"] == 1
    relus = [a for a in r["activations"].values() if a["module"] == "ReLU"]
    assert len(relus) == 2 and all(0 <= a["dead"] <= 1 for a in relus)
    assert r["data"]["labels"]["classes"] == 10
    assert sum(r["data"]["labels"]["counts"]) == r["data"]["examples"]
    text = ins.format_report(r)
    assert "head.weight" in text and "labels: 10 classes" in text
    p = ins.write_report(r, tmp_path / "r.json")
    assert json.loads(p.read_text())["model"] == "mlp"
    with pytest.raises(UserError, match="--batches must be at least 1"):
        ins.inspect(digits_target, batches=0)


def test_gradcheck_passes_on_layers_and_a_model() -> None:
    r = ins.gradcheck("lstm_cell")
    assert r["passed"] and r["mode"] == "full" and r["kind"] == "layer"
    assert r["parameters_checked"] == 4 and r["inputs_checked"] == [[2, 3]]
    r = ins.gradcheck("gcn_layer", {"out_channels": 2})
    assert r["passed"] and r["elements"] == 5 * 4 + 2 * 4 + 2
    r = ins.gradcheck("mlp", {"in_features": 6, "hidden": [5], "num_classes": 3})
    assert r["passed"] and r["kind"] == "model"
    assert r["elements"] == 2 * 6 + (6 * 5 + 5) + (5 * 3 + 3)
    r = ins.gradcheck("gcn_node", {"num_node_features": 4, "num_classes": 2})  # a PyG batch as input
    assert r["passed"] and r["inputs_checked"] and r["inputs_checked"][0][-1] == 4


def test_gradcheck_catches_a_wrong_backward() -> None:
    """The check is not vacuous: a function whose backward is off by a factor fails it."""

    class Twice(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            return x * 3

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            return g * 2

    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert not torch.autograd.gradcheck(Twice.apply, (x,), raise_exception=False)


def test_gradcheck_refusals() -> None:
    with pytest.raises(UserError, match="Unknown model 'lstm_cel'"):
        ins.gradcheck("lstm_cel")
    with pytest.raises(UserError, match="has no argument 'width'"):
        ins.gradcheck("gcn_layer", {"width": 3})
    assert "lstm_cell" in ins.gradcheck_names() and "mlp" in ins.gradcheck_names()
    # A model that builds float32 tensors inside its forward (the timestep embedding) cannot take it.
    with pytest.raises(UserError, match="'ddpm_unet' cannot take a float64 gradient check"):
        ins.gradcheck("ddpm_unet")
    with pytest.raises(UserError, match="'bert_mlm' cannot be built for a gradient check .*vocab_size"):
        ins.gradcheck("bert_mlm")


def test_open_run_refuses_overrides_and_recipe_refuses_weights(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("recipe: digits-mlp\n")
    with pytest.raises(UserError, match="Overrides apply to a recipe"):
        ins.open_target(str(tmp_path), ["optim.lr=1"])
    with pytest.raises(UserError, match="--weights applies to a run directory"):
        ins.open_target("digits-mlp", QUIET, weights="best")


def test_data_check_of_a_regression_split_reports_targets() -> None:
    t = ins.open_target("diabetes-mlp", QUIET)
    r = ins.data_check(t.data.train, t.info, 256)
    y = t.data.train.tensors[1].double()
    assert "labels" not in r
    assert r["targets"]["mean"] == pytest.approx(float(y.mean()), abs=1e-9)
    assert r["targets"]["max"] == pytest.approx(float(y.max()))
    assert math.isfinite(r["mean"])
