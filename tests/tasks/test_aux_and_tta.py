"""GoogLeNet's auxiliary losses (weight 0.3) and flip test-time augmentation in the classification task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.outputs import AuxLogits
from archzoo.models.cnn import convnet_small
from archzoo.models.inception import inception_small
from archzoo.registry import create_task

CPU = torch.device("cpu")
FASHION_INFO = {"name": "fashion_mnist", "kind": "image", "num_classes": 10, "in_channels": 1, "image_size": 28}


def small_googlenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return inception_small(in_channels=1, aux_logits=True, dropout=0.0, dropout_aux=0.0)


def test_googlenet_returns_aux_logits_in_training_only() -> None:
    model = small_googlenet()
    x = torch.randn(3, 1, 28, 28)
    out = model.train()(x)
    assert isinstance(out, AuxLogits) and out.logits.shape == (3, 10) and len(out.aux) == 2
    assert model.eval()(x).shape == (3, 10)
    assert isinstance(inception_small(in_channels=1).train()(x), torch.Tensor)  # no aux heads: plain logits


@pytest.mark.parametrize("weight", [None, 1.0])
def test_aux_losses_join_the_loss_with_their_weight(weight: float | None) -> None:
    model = small_googlenet().train()
    task = create_task("classification", **({} if weight is None else {"aux_weight": weight}))
    task.setup(model, FASHION_INFO, CPU)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 5, 9])
    loss, logs = task.loss(model, (x, y))
    logits, aux1, aux2 = model.forward_with_aux(x)  # the same batch statistics, no dropout
    w = 0.3 if weight is None else weight
    expected = F.cross_entropy(logits, y) + w * (F.cross_entropy(aux1, y) + F.cross_entropy(aux2, y))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logs["aux_loss"], F.cross_entropy(aux1, y) + F.cross_entropy(aux2, y))
    loss.backward()
    assert model.aux1.fc2.weight.grad.abs().sum() > 0 and model.aux2.fc2.weight.grad.abs().sum() > 0


def test_evaluation_uses_the_main_head_alone() -> None:
    model = small_googlenet().eval()
    task = create_task("classification")
    task.setup(model, FASHION_INFO, CPU)
    x, y = torch.randn(6, 1, 28, 28), torch.arange(6)
    with torch.no_grad():
        task.eval_step(model, (x, y), "val")
        expected = F.cross_entropy(model(x), y)
    assert task.compute("val")["val/loss"] == pytest.approx(float(expected), abs=1e-5)


def test_aux_weight_is_refused_for_a_model_without_aux_heads() -> None:
    task = create_task("classification", aux_weight=0.3)
    with pytest.raises(UserError, match="has none"):
        task.setup(convnet_small(in_channels=1), FASHION_INFO, CPU)
    with pytest.raises(UserError, match="0 or more"):
        create_task("classification", aux_weight=-1.0)


def test_flip_tta_averages_the_softmax_of_both_views() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).eval()  # no mirror symmetry
    task = create_task("classification", tta="flip")
    task.setup(model, FASHION_INFO, CPU)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    with torch.no_grad():
        task.eval_step(model, (x, y), "test")
        p = (model(x).softmax(-1) + model(x.flip(-1)).softmax(-1)) / 2
        plain = (model(x).argmax(1) == y).float().mean()
    out = task.compute("test")
    assert out["test/acc"] == pytest.approx(float(plain))
    assert out["test/tta_acc"] == pytest.approx(float((p.argmax(1) == y).float().mean()))
    assert out["test/tta_loss"] == pytest.approx(float(F.nll_loss(p.log(), y)), abs=1e-5)
    assert (p.argmax(1) != model(x).argmax(1)).any()  # the mirrored view changed some predictions


def test_flip_tta_is_refused_where_a_mirror_changes_the_class() -> None:
    model = convnet_small(in_channels=1)
    with pytest.raises(UserError, match="refused for mnist"):
        create_task("classification", tta="flip").setup(
            model, {**FASHION_INFO, "name": "mnist", "flip_changes_class": True}, CPU
        )
    with pytest.raises(UserError, match="does not hold images"):
        create_task("classification", tta="flip").setup(model, {"name": "sms_spam", "num_classes": 2}, CPU)
    with pytest.raises(UserError, match="one of none, flip"):
        create_task("classification", tta="rotate")


def test_eval_tta_flip_reports_both_figures_and_is_refused_for_digits(digits_run, data_root, tmp_path, capsys) -> None:
    import json

    from archzoo.cli import main

    assert main(["eval", str(digits_run), "--tta", "flip"]) != 0
    assert "refused" in capsys.readouterr().err
    run = tmp_path / "fashion"
    args = ["fashion-cnn", "train.epochs=1", "data.args.limit=600", "log.progress=none", "train.threads=1"]
    assert main(["train", *args, "--data-dir", str(data_root), "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--tta", "flip", "--data-dir", str(data_root)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"test/acc", "test/tta_acc", "test/tta_loss"} <= set(out) and out["test/tta_loss"] != out["test/loss"]


def test_flip_augmentation_is_refused_for_digits(capsys) -> None:
    from archzoo.cli import main

    assert main(["train", "digits-cnn", "data.augment.flip=true", "log.progress=none", "train.threads=1"]) != 0
    assert "leave flips off" in capsys.readouterr().err
