"""archzoo.viz.reference: activations, losses and optimizer curves on known values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from archzoo.errors import UserError
from archzoo.viz import reference as ref


@pytest.fixture(scope="module")
def curves() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    x = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.5], dtype=torch.float64)
    return ref.activation_curves(x)


X = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.5], dtype=torch.float64)


def test_activation_values_at_known_points(curves: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    at = {float(v): i for i, v in enumerate(X)}
    y, dy = curves["sigmoid"]
    assert float(y[at[0.0]]) == pytest.approx(0.5) and float(dy[at[0.0]]) == pytest.approx(0.25)
    y, dy = curves["tanh"]
    assert float(y[at[0.0]]) == 0.0 and float(dy[at[0.0]]) == pytest.approx(1.0)
    y, dy = curves["relu"]
    assert float(y[at[-1.0]]) == 0.0 and float(dy[at[-1.0]]) == 0.0 and float(dy[at[1.5]]) == 1.0
    y, dy = curves["gelu"]
    assert float(y[at[0.0]]) == 0.0 and float(dy[at[0.0]]) == pytest.approx(0.5)
    y, dy = curves["leaky_relu"]
    assert float(y[at[-2.0]]) == pytest.approx(-0.4) and float(dy[at[-1.0]]) == pytest.approx(0.2)
    y, dy = curves["elu"]
    assert float(y[at[-1.0]]) == pytest.approx(math.exp(-1) - 1) and float(dy[at[-1.0]]) == pytest.approx(math.exp(-1))
    y, dy = curves["swish"]
    assert float(y[at[0.0]]) == 0.0 and float(dy[at[0.0]]) == pytest.approx(0.5)


def test_activations_match_closed_forms_over_a_grid() -> None:
    x = torch.linspace(-4, 4, 161, dtype=torch.float64)
    x = x[x != 0]  # ReLU-like kinks have no derivative at 0
    c = ref.activation_curves(x)
    s = torch.sigmoid(x)
    phi = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    want = {
        "relu": (x.clamp_min(0), (x > 0).double()),
        "leaky_relu": (torch.where(x > 0, x, 0.2 * x), torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.2))),
        "elu": (torch.where(x > 0, x, torch.exp(x) - 1), torch.where(x > 0, torch.ones_like(x), torch.exp(x))),
        "sigmoid": (1 / (1 + torch.exp(-x)), s * (1 - s)),
        "tanh": (torch.tanh(x), 1 - torch.tanh(x) ** 2),
        "swish": (x * s, s + x * s * (1 - s)),
        "gelu": (x * Phi, Phi + x * phi),
    }
    assert set(c) == set(want) == set(ref.ACTIVATIONS)
    for name, (f, df) in want.items():
        y, dy = c[name]
        torch.testing.assert_close(y, f, atol=1e-10, rtol=0, msg=name)
        torch.testing.assert_close(dy, df, atol=1e-10, rtol=0, msg=name)


def test_loss_curves_known_values_and_closed_forms() -> None:
    c = ref.loss_curves(points=601)  # grids hold 0, ±1, ±2 and p = 0.5 exactly enough
    reg = c["regression"]
    x = reg["x"]
    torch.testing.assert_close(reg["mse"], x**2)
    torch.testing.assert_close(reg["l1"], x.abs())
    torch.testing.assert_close(reg["huber"], torch.where(x.abs() <= 1, 0.5 * x**2, x.abs() - 0.5))
    i2 = int(torch.argmin((x - 2).abs()))
    assert float(reg["mse"][i2]) == pytest.approx(4.0) and float(reg["huber"][i2]) == pytest.approx(1.5)
    prob = c["probability"]
    p = prob["x"]
    torch.testing.assert_close(prob["bce"], -p.log())
    torch.testing.assert_close(prob["nll"], -p.log())
    torch.testing.assert_close(prob["kl"], 0.7 * (0.7 / p).log() + 0.3 * (0.3 / (1 - p)).log())
    i7 = int(torch.argmin((p - 0.7).abs()))
    assert float(prob["kl"][i7]) == pytest.approx(0.0, abs=1e-3)  # KL vanishes where p equals the target
    m = c["margin"]
    z = m["x"]
    torch.testing.assert_close(m["ce"], torch.log(torch.exp(z) + 2) - z)
    torch.testing.assert_close(m["hinge"], 2 * (1 - z).clamp_min(0) / 3)
    i0 = int(torch.argmin(z.abs()))
    assert float(m["ce"][i0]) == pytest.approx(math.log(3)) and float(m["hinge"][i0]) == pytest.approx(2 / 3)


def test_plots_are_written(tmp_path: Path) -> None:
    for path in (ref.plot_activations(tmp_path / "a.png"), ref.plot_losses(tmp_path / "l.png")):
        w, h = Image.open(path).size
        assert w > 500 and h > 300


def test_optimizer_curves_start_at_the_same_loss(tmp_path: Path) -> None:
    steps = 4
    curves = ref.optimizer_curves("digits-mlp", ["train.threads=1", "model.args.dropout=0"], None, steps)
    assert list(curves) == list(ref.OPTIMIZERS)
    first = curves["sgd"][0]
    for name, losses in curves.items():
        assert len(losses) == steps, name
        assert all(math.isfinite(v) for v in losses)
        assert losses[0] == pytest.approx(first, abs=1e-5), name
    # After the first update the optimizers part ways.
    assert len({round(v[-1], 5) for v in curves.values()}) >= 5
    # The initial loss of an untrained 10-class model is near log(10).
    assert first == pytest.approx(math.log(10), abs=0.3)
    png = ref.plot_optimizers(curves, tmp_path / "o.png", "digits-mlp")
    assert Image.open(png).size[0] > 500


def test_step_losses_are_the_losses_of_each_step() -> None:
    """The loss of step 1 recovered from the running sums is the task's loss on the first batch."""
    from archzoo.engine.inspection import open_target, training_batches

    curves = ref.optimizer_curves("digits-mlp", ["train.threads=1", "model.args.dropout=0"], ["adam"], 2)
    t = open_target("digits-mlp", ["train.threads=1", "model.args.dropout=0"])
    (batch,) = training_batches(t, 1)
    t.model.train()
    with torch.no_grad():
        want = float(F.cross_entropy(t.model(batch[0]), batch[1]))
    assert curves["adam"][0] == pytest.approx(want, rel=1e-5)


def test_optimizer_refusals() -> None:
    with pytest.raises(UserError, match="Unknown optimizer 'lion'"):
        ref.parse_optimizers("adam,lion")
    with pytest.raises(UserError, match="twice"):
        ref.parse_optimizers("adam,adam")
    with pytest.raises(UserError, match="sets optim.name itself"):
        ref.optimizer_curves("digits-mlp", ["optim.name=sgd"], ["adam"], 2)
    with pytest.raises(UserError, match="--steps must be at least 1"):
        ref.optimizer_curves("digits-mlp", [], ["adam"], 0)
