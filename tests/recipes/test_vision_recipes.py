"""The image-classification recipes build and take a training step on tiny data."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archzoo.config import load_config, recipe_dict
from archzoo.engine.trainer import Trainer

ONE_STEP = [
    "train.epochs=1",
    "train.max_steps=1",
    "train.threads=1",
    "train.precision=fp32",  # fashion-resnet18 asks for auto, whose CPU probe times a full ResNet-18
    "data.batch_size=16",
    "data.eval_batch_size=64",
    "log.progress=none",
    "log.plots=false",
    "log.tensorboard=false",
]


def _one_step(recipe: str, tmp_path: Path, *extra: str, steps: int = 1) -> dict[str, float]:
    cfg = load_config(recipe, None, [*ONE_STEP, *extra, f"train.max_steps={steps}"])
    tr = Trainer(cfg, run_dir=tmp_path / recipe)
    assert tr.steps_per_epoch >= 1
    res = tr.fit()
    assert tr.ctx.global_step == steps
    return res


@pytest.mark.parametrize(
    "recipe", ["fashion-resnet", "fashion-resnet18", "fashion-mobilenet", "fashion-efficientnet", "fashion-lenet"]
)
def test_fashion_recipes_take_a_step(recipe: str, data_root: Path, tmp_path: Path) -> None:
    res = _one_step(recipe, tmp_path, f"data.dir={data_root}", "data.args.limit=256")
    assert 0.0 <= res["test/acc"] <= 1.0


@pytest.mark.parametrize("recipe", ["mnist-mlp", "mnist-cnn"])
def test_mnist_recipes_take_a_step_without_flips(recipe: str, data_root: Path, tmp_path: Path) -> None:
    # A flipped digit is another digit (or none): the MNIST recipes must not flip.
    assert not (recipe_dict(recipe)["data"].get("augment") or {}).get("flip", False)
    res = _one_step(recipe, tmp_path, f"data.dir={data_root}", "data.args.limit=256")
    assert 0.0 <= res["test/acc"] <= 1.0


# Issue 18: one recipe per classic CNN on 28 px Fashion-MNIST; each description states its stem, input and epochs.
CLASSIC = {
    "fashion-alexnet": "alexnet",
    "fashion-vgg16": "vgg16_bn",
    "fashion-mobilenetv1": "mobilenet_v1",
    "fashion-resnet50": "resnet50",
    "fashion-attention-cnn": "attention_cnn",
    "fashion-googlenet": "inception_small",
    "fashion-dynamic-cnn": "dynamic_cnn",
}


@pytest.mark.parametrize("recipe", sorted(CLASSIC))
def test_classic_cnn_recipes_load_and_take_two_steps(recipe: str, data_root: Path, tmp_path: Path) -> None:
    spec = recipe_dict(recipe)
    assert spec["model"]["name"] == CLASSIC[recipe]
    text = spec["description"]
    assert "28 px" in text and "1x28x28" in text and "stem" in text
    assert f"{spec['train']['epochs']} epochs" in text
    res = _one_step(recipe, tmp_path, f"data.dir={data_root}", "data.args.limit=256", steps=2)
    assert 0.0 <= res["test/acc"] <= 1.0
    assert math.isfinite(res["test/loss"])


def _write_cifar(folder: Path, n: int = 8) -> None:
    """A tiny cifar-10-batches-py folder: five training batches, a test batch and the meta file."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), np.uint8),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def test_cifar10_resnet_takes_a_step(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "data" / "cifar-10-batches-py")
    res = _one_step("cifar10-resnet", tmp_path, f"data.dir={tmp_path / 'data'}")
    assert 0.0 <= res["test/acc"] <= 1.0


def test_folder_resnet_needs_a_root_and_takes_a_step(tmp_path: Path) -> None:
    assert "data.args.root" in recipe_dict("folder-resnet")["description"]
    rng = np.random.default_rng(0)
    for c in ("cat", "dog", "fox"):
        (tmp_path / "pets" / "train" / c).mkdir(parents=True)
        for i in range(6):
            img = rng.integers(0, 256, (40, 48, 3), np.uint8)
            Image.fromarray(img).save(tmp_path / "pets" / "train" / c / f"{i}.png")
    res = _one_step("folder-resnet", tmp_path, f"data.args.root={tmp_path / 'pets'}", "data.val_fraction=0.25")
    assert 0.0 <= res["val/acc"] <= 1.0
