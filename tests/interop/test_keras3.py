"""The Keras 3 translations of archzoo's MLP and small CNN, and Keras's compile/fit path."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from archzoo.config import load_config
from archzoo.errors import UserError

if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed (pip install 'archzoo[keras]')", allow_module_level=True)
os.environ.setdefault("KERAS_BACKEND", "torch")

from archzoo.interop.keras3 import (  # noqa: E402
    _augmented_batches,
    get_keras,
    keras_config,
    param_counts,
    split_arrays,
    to_keras,
    train_keras,
)

# Keras's torch backend converts tensors with np.array(x), which numpy 2 warns about at every call.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
FAST = ["train.threads=1", "log.progress=none"]
# The facts each recipe's model is built from (what the datasets put in info), without the data.
INFO = {
    "diabetes-mlp": ({"in_features": 10, "out_features": 1}, (10,)),
    "fashion-mlp": ({"num_classes": 10, "in_channels": 1, "image_size": 28}, (1, 28, 28)),
    "fashion-cnn": ({"num_classes": 10, "in_channels": 1, "image_size": 28}, (1, 28, 28)),
    "digits-cnn": ({"num_classes": 10, "in_channels": 1, "image_size": 8}, (1, 8, 8)),
}


def _model(recipe: str) -> tuple[torch.nn.Module, tuple[int, ...], bool]:
    from archzoo.engine.builders import build_model

    cfg = load_config(recipe)
    info, shape = INFO[recipe]
    torch.manual_seed(0)
    return build_model(cfg, info).eval(), shape, cfg.model.channels_last


@pytest.mark.parametrize("api", ["sequential", "functional"])
@pytest.mark.parametrize("recipe", list(INFO))
def test_same_parameters_and_function(recipe: str, api: str) -> None:
    model, shape, nhwc = _model(recipe)
    # Non-trivial batch-norm statistics, so copying them is checked too.
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    kshape = (shape[1], shape[2], shape[0]) if nhwc else shape
    kmodel = to_keras(model, kshape, api, "channels_last" if nhwc else "channels_first")
    counts = param_counts(model, kmodel)
    # Like with like: torch parameters are Keras's trainable weights; torch keeps BN's running
    # mean and variance as buffers, Keras as non-trainable weights.
    assert counts["keras_trainable"] == counts["archzoo"]
    assert counts["keras_non_trainable"] == counts["archzoo_bn_buffers"]
    assert kmodel.count_params() == counts["archzoo"] + counts["archzoo_bn_buffers"]
    if recipe == "fashion-cnn":
        assert counts["archzoo"] == 86_430  # convnet_small's documented size
    x = torch.randn(4, *shape)
    with torch.no_grad():
        want = model(x).numpy()
    xk = x.permute(0, 2, 3, 1).numpy() if nhwc else x.numpy()  # (B, C, H, W) -> (B, H, W, C)
    got = np.asarray(kmodel.predict(xk, verbose=0))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_arrays_are_archzoos_tensors() -> None:
    from archzoo.engine.builders import build_data

    bundle = build_data(load_config("digits-cnn"))
    x, y = split_arrays(bundle.val, channels_last=False, num_classes=10)
    np.testing.assert_array_equal(x, bundle.val.tensors[0].numpy())
    np.testing.assert_array_equal(y.argmax(1), bundle.val.tensors[1].numpy())
    xl, _ = split_arrays(bundle.val, channels_last=True, num_classes=10)
    np.testing.assert_array_equal(xl, bundle.val.tensors[0].permute(0, 2, 3, 1).numpy())


def test_augmented_batches_match_archzoos_batches() -> None:
    from archzoo.engine.builders import build_data

    keras = get_keras()
    # Crops and cut-outs draw from the per-batch generators (flips are refused for digits: a mirrored digit is no digit).
    bundle = build_data(load_config("digits-cnn", None, ["data.augment.cutout=3", "data.augment.crop_padding=1"]))
    ds = _augmented_batches(keras, bundle.train, 64, 3, channels_last=False, num_classes=10)
    assert len(ds) == bundle.train.num_batches(64)
    for epoch in (0, 1):
        want = list(bundle.train.batches(64, shuffle=True, seed=3, epoch=epoch, augment=True))
        for i in (0, len(ds) - 1):
            x, y = ds[i]
            np.testing.assert_array_equal(x, want[i][0].numpy())
            np.testing.assert_array_equal(y.argmax(1), want[i][1].numpy())
        ds.on_epoch_end()


def test_one_epoch_fit_writes_the_run(tmp_path: Path) -> None:
    cfg, replaced = keras_config("digits-cnn", ["train.epochs=1", *FAST])
    assert replaced == {"optim.scheduler": "onecycle", "train.early_stopping": 0}
    assert cfg.optim.scheduler == "plateau" and cfg.train.early_stopping == 10
    res = train_keras(cfg, "functional", tmp_path / "run", replaced=replaced)
    run = tmp_path / "run"
    for name in ("config.yaml", "history.csv", "steps.csv", "curves.png", "results.json"):
        assert (run / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert len(rows) == 1 and {"loss", "acc", "val_loss", "val_acc", "learning_rate"} <= set(rows[0])
    assert json.loads((run / "results.json").read_text())["test/acc"] == pytest.approx(res["test/acc"])
    assert res["test/acc"] > 0.5 and res["epochs_run"] == 1
    assert load_config(None, run / "config.yaml").optim.scheduler == "plateau"
    steps = list(csv.DictReader(open(run / "steps.csv")))  # digits-cnn logs every 10 of its 21 steps
    assert [int(r["step"]) for r in steps] == [10, 20] and all(float(r["train/loss"]) > 0 for r in steps)
    keras = get_keras()
    best = keras.saving.load_model(run / "checkpoints" / "best.keras")
    from archzoo.engine.builders import build_data

    bundle = build_data(cfg)
    x, y = split_arrays(bundle.test, False, 10)
    assert best.evaluate(x, y, verbose=0, return_dict=True)["acc"] == pytest.approx(res["test/acc"], abs=1e-6)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ev = EventAccumulator(str(run))
    ev.Reload()
    (scalar,) = ev.Scalars("val_acc")
    assert scalar.step == 1 and scalar.value == pytest.approx(float(rows[0]["val_acc"]), rel=1e-5)


def test_early_stopping_restores_the_best_weights(tmp_path: Path) -> None:
    # A high learning rate without dropout overfits 442 patients within a few epochs.
    over = [
        "train.epochs=40",
        "train.early_stopping=2",
        "optim.lr=0.05",
        "model.args.dropout=0",
        "optim.scheduler=none",
    ]
    cfg, _ = keras_config("diabetes-mlp", [*over, *FAST, "log.tensorboard=false", "log.plots=false"])
    res = train_keras(cfg, "sequential", tmp_path / "run")
    hist = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    val = [float(r["val_rmse"]) for r in hist]
    assert res["epochs_run"] < 40 and res["best_epoch"] == int(np.argmin(val)) + 1 < res["epochs_run"]
    assert not (tmp_path / "run" / "curves.png").exists()
    keras = get_keras()
    from archzoo.engine.builders import build_data

    final = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "final.keras")
    x, y = split_arrays(build_data(cfg).val, False, None)
    got = final.evaluate(x, y, verbose=0, return_dict=True)["rmse"]
    assert got == pytest.approx(min(val), rel=1e-4)  # the best epoch's weights, in target units
    assert got < val[-1] - 1e-3  # not those of the last epoch


def test_optimizer_options_act() -> None:
    from archzoo.interop.keras3 import _optimizer

    keras = get_keras()
    over = ["optim.name=sgd", "optim.weight_decay=0", "optim.momentum=0.8", "optim.nesterov=true",
            "optim.lr=0.02", "train.grad_clip=1.5", "train.grad_accum=3"]  # fmt: skip
    cfg, _ = keras_config("digits-cnn", over)
    opt = _optimizer(keras, cfg)
    assert isinstance(opt, keras.optimizers.SGD) and opt.momentum == 0.8 and opt.nesterov
    assert float(opt.learning_rate) == pytest.approx(0.02)
    assert opt.global_clipnorm == 1.5 and opt.gradient_accumulation_steps == 3
    cfg, _ = keras_config("digits-cnn", ["optim.betas=[0.8,0.95]", "optim.eps=1e-6"])
    opt = _optimizer(keras, cfg)
    assert isinstance(opt, keras.optimizers.AdamW) and opt.weight_decay == pytest.approx(5e-4)
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == (0.8, 0.95, 1e-6)


def test_checkpoint_every_steps(tmp_path: Path) -> None:
    # diabetes-mlp's epoch is 10 steps: every 20 steps saves nothing in one epoch, every epoch saves once.
    quiet = ["train.epochs=1", "log.tensorboard=false", "log.plots=false", *FAST]
    for every, saved in (("20 steps", False), ("epoch", True)):
        cfg, _ = keras_config("diabetes-mlp", [*quiet, f"train.checkpoint_every={every}"])
        train_keras(cfg, "sequential", tmp_path / every)
        assert (tmp_path / every / "checkpoints" / "last.keras").is_file() == saved, every
        assert (tmp_path / every / "checkpoints" / "final.keras").is_file()


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["model.name=vit"], "translates the models"),
        (["optim.name=rmsprop"], "maps the optimizers"),
        (["optim.name=adam"], "decoupled decay"),
        (["optim.scheduler=cosine"], "ReduceLROnPlateau"),
        (["train.monitor=val/r2"], "has no Keras metric"),
        (["train.monitor=val/rmse"], "use one of val/loss, val/acc"),
        (["train.precision=bf16"], "fp32"),
        (["train.checkpoint_every=30 s"], "ModelCheckpoint"),
        (["task.args.top_k=3"], "task.args.top_k"),
    ],
)
def test_refused_options(overrides: list[str], words: str) -> None:
    with pytest.raises(UserError, match=words):
        keras_config("fashion-cnn", overrides)


def test_cli_refuses_in_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from archzoo.cli import main

    assert main(["keras", "fashion-vit"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("archzoo: error: ") and "vit" in err[0]
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert main(["keras", "diabetes-mlp", "--run-dir", str(tmp_path / "r")]) == 2
    assert "torch backend only" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    with pytest.raises(UserError, match="sequential or functional"):
        to_keras(torch.nn.Linear(2, 2), (2,), "subclass")


def test_cli_trains_and_prints_results(tmp_path: Path, capsys) -> None:
    from archzoo.cli import main

    rc = main(["keras", "diabetes-mlp", "train.epochs=2", *FAST, "--api", "functional", "--run-dir", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0
    res = json.loads(out.out)
    assert res["api"] == "functional" and res["epochs_run"] == 2 and res["test/rmse"] > 0
    assert "optim.scheduler=cosine becomes plateau" in out.err
    assert (tmp_path / "checkpoints" / "best.keras").is_file()
