"""archzoo sample: grids and raw tensors from generative runs; one-sentence errors otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from archzoo.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archzoo", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("gen") / "digits-vae"
    assert (
        main(["train", "digits-vae", "train.epochs=2", "log.progress=none", "log.plots=false", "--run-dir", str(run)])
        == 0
    )
    return run


def test_vae_sample_reconstructions_interpolation_and_latent_scatter(vae_run: Path, tmp_path: Path) -> None:
    r = run_cli("sample", str(vae_run), "--n", "16", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    written = {Path(p).name for p in r.stdout.split()}
    assert written == {
        "samples.png",
        "samples.safetensors",
        "reconstructions.png",
        "interpolation.png",
        "latent_scatter.png",
    }
    x = load_file(str(tmp_path / "samples.safetensors"))["samples"]
    assert tuple(x.shape) == (16, 1, 8, 8)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    for name in written - {"samples.safetensors"}:
        with Image.open(tmp_path / name) as im:
            im.load()
            assert im.width > 8 and im.height > 8


def test_flow_samples_two_moons_points(tmp_path: Path) -> None:
    run = tmp_path / "moons"
    assert (
        main(
            [
                "train",
                "moons-realnvp",
                "train.epochs=1",
                "data.args={n_samples: 800}",
                "log.progress=none",
                "log.plots=false",
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    assert main(["sample", str(run), "--n", "100"]) == 0
    assert load_file(str(run / "samples" / "samples.safetensors"))["samples"].shape == (100, 2)
    assert (run / "samples" / "samples.png").is_file()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--class", "3"], "unconditional"),
        (["--steps", "10"], "diffusion models only"),
        (["--n", "0"], "--n must be at least 1"),
    ],
)
def test_sample_errors_are_one_sentence(vae_run: Path, extra: list[str], needle: str) -> None:
    r = run_cli("sample", str(vae_run), *extra)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_sample_from_a_classifier_is_refused(digits_run: Path) -> None:
    r = run_cli("sample", str(digits_run))
    assert r.returncode == 2
    assert "not a generative model" in r.stderr


def test_sample_seed_uses_a_cpu_generator_whatever_the_model_device() -> None:
    """The seed draws on the CPU, so `--seed S` gives the same noise for a model on any device.

    A model on the meta device stands in for an accelerator: a generator made on the model's
    device cannot exist there, the CPU one the models expect can.
    """
    import torch

    from archzoo.registry import create_model
    from archzoo.viz.sampling import sample_kwargs

    model = create_model("dcgan", image_size=28, in_channels=1).to("meta")
    kw = sample_kwargs(model, 4, None, None, None, seed=7)
    g = kw["generator"]
    assert g.device.type == "cpu"
    assert torch.equal(torch.randn(5, generator=g), torch.randn(5, generator=torch.Generator().manual_seed(7)))
