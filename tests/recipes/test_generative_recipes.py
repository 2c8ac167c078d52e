"""The generative recipes (Fashion-MNIST and MNIST) build, take training steps on tiny data, and sample through the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from archzoo.cli import main
from archzoo.config import load_config
from archzoo.engine.trainer import Trainer

STEPS = [
    "train.epochs=1",
    "train.max_steps=2",
    "train.threads=1",
    "data.batch_size=16",
    "data.eval_batch_size=64",
    "log.progress=none",
    "log.plots=false",
    "log.tensorboard=false",
]


@pytest.mark.parametrize(
    ("recipe", "extra"),
    [
        ("fashion-vae", []),
        ("fashion-dcgan", []),
        ("fashion-cgan", []),
        ("fashion-wgan-gp", []),
        ("fashion-ae-anomaly", []),
        ("fashion-vqvae", []),
        ("fashion-realnvp", []),
        # A small U-Net and a short schedule keep the per-epoch sample grid cheap.
        ("fashion-ddpm", ["model.args.base_channels=8", "model.args.timesteps=20"]),
        ("fashion-ae", []),
        ("mnist-gan", []),
        ("mnist-dcgan", []),
        ("mnist-vae", []),
    ],
)
def test_generative_recipes_train_and_sample(recipe: str, extra: list[str], data_root: Path, tmp_path: Path) -> None:
    cfg = load_config(recipe, None, [*STEPS, f"data.dir={data_root}", "data.args.limit=128", *extra])
    tr = Trainer(cfg, run_dir=tmp_path / recipe)
    res = tr.fit()
    assert tr.ctx.global_step == 2
    assert all(math.isfinite(v) for k, v in res.items() if k.startswith("test/"))
    out = tmp_path / "samples"
    assert (
        main(
            ["sample", str(tr.run_dir), "--n", "4", "--out", str(out), "--steps", "5"]
            if recipe == "fashion-ddpm"
            else ["sample", str(tr.run_dir), "--n", "4", "--out", str(out)]
        )
        == 0
    )
    if recipe not in ("fashion-ae-anomaly", "fashion-ae"):
        x = load_file(str(out / "samples.safetensors"))["samples"]
        assert tuple(x.shape) == (4, 1, 28, 28)
    else:
        assert (out / "reconstructions.png").is_file()
