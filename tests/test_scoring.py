"""Fréchet distance and class accuracy of generative runs in the feature space of a trained classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from archzoo.cli import main
from archzoo.engine.run import load_run
from archzoo.errors import UserError
from archzoo.scoring import ClassifierFeatures, frechet_distance, gaussian_stats, generate, real_images, score_run


def _scipy_frechet(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """The textbook formula with a general matrix square root, as an independent reference."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_gaussian_stats_match_numpy() -> None:
    f = torch.randn(300, 7, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 8)
    mu, cov = gaussian_stats(f)
    assert torch.allclose(mu, f.double().mean(0))
    np.testing.assert_allclose(cov.numpy(), np.cov(f.double().numpy(), rowvar=False), rtol=1e-10)


def test_frechet_matches_scipy_reference() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(500, 12, generator=g) @ torch.randn(12, 12, generator=g)
    b = torch.randn(500, 12, generator=g) @ torch.randn(12, 12, generator=g) + 0.5
    s1, s2 = gaussian_stats(a), gaussian_stats(b)
    ref = _scipy_frechet(*(t.numpy() for t in (*s1, *s2)))
    assert frechet_distance(*s1, *s2) == pytest.approx(ref, rel=1e-6)


def test_frechet_closed_forms() -> None:
    # 1-D: (m1 - m2)^2 + (sd1 - sd2)^2; identical Gaussians: 0; equal covariances: the squared mean gap.
    d = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]]))
    assert d == pytest.approx(9.0 + 1.0)
    cov = torch.tensor([[2.0, 0.3], [0.3, 1.0]])
    mu = torch.tensor([0.5, -1.0])
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, cov, mu + torch.tensor([3.0, 4.0]), cov) == pytest.approx(25.0, abs=1e-9)


def test_frechet_rejects_mismatched_dimensions() -> None:
    with pytest.raises(UserError, match="Feature dimensions differ"):
        frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))


@pytest.fixture(scope="module")
def classifier(digits_run: Path):
    return load_run(digits_run)


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("score") / "vae"
    args = ["train.epochs=3", "log.progress=none", "train.threads=1", "--run-dir", str(run)]
    assert main(["train", "digits-vae", *args]) == 0
    return run


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("score") / "cgan"
    args = [
        "data.name=digits",
        "data.args={}",
        "model.name=cgan",
        "model.args.arch=mlp",
        "train.epochs=2",
        "log.progress=none",
        "train.threads=1",
        "--run-dir",
        str(run),
    ]
    assert main(["train", "fashion-dcgan", *args]) == 0
    return run


def test_features_are_the_input_of_the_last_linear_layer(classifier) -> None:
    feats = ClassifierFeatures(classifier, batch_size=64)
    x, _ = real_images(classifier)
    f, logits = feats(x[:100])
    head = feats.head
    assert f.shape == (100, head.in_features)
    with torch.no_grad():
        assert torch.allclose(head(f), logits, atol=1e-5)  # the captured features really feed the logits
        assert torch.allclose(classifier.model(x[:100]), logits, atol=1e-5)


def test_images_of_the_wrong_shape_are_one_sentence(classifier) -> None:
    feats = ClassifierFeatures(classifier)
    with pytest.raises(UserError, match=r"do not match the classifier's input \(1, 8, 8\)"):
        feats(torch.zeros(4, 1, 28, 28), (0.0, 1.0))


def test_real_images_score_close_and_noise_far(classifier) -> None:
    """Held-out real digits sit near the test set; uniform noise, in the same pixel range, far from it."""
    feats = ClassifierFeatures(classifier)
    x_test, _ = real_images(classifier)
    stats = gaussian_stats(feats(x_test)[0])
    x_train, _ = real_images(classifier, "train")
    real = frechet_distance(*stats, *gaussian_stats(feats(x_train)[0]))
    noise = torch.rand(len(x_train), 1, 8, 8, generator=torch.Generator().manual_seed(0))
    fake = frechet_distance(*stats, *gaussian_stats(feats(noise, (0.0, 1.0))[0]))
    assert real < 0.2 * fake


def test_score_vae_run(vae_run: Path, classifier) -> None:
    out = score_run(load_run(vae_run), classifier, n=300, batch_size=128)
    assert out["n_generated"] == 300 and out["n_real"] == len(real_images(classifier)[0])
    assert np.isfinite(out["frechet"]) and out["frechet"] > 0
    assert "class_accuracy" not in out  # an unconditional model has no classes to check
    assert "frechet_at" not in out
    assert out["classifier_test_acc"] > 0.8


def test_frechet_at_smaller_counts_uses_the_first_samples(vae_run: Path, classifier) -> None:
    run = load_run(vae_run)
    full = score_run(run, classifier, n=300, batch_size=100, also_at=(100, 300, 1000))
    assert set(full["frechet_at"]) == {"100"}  # only counts below n
    small = score_run(run, classifier, n=100, batch_size=100)
    assert full["frechet_at"]["100"] == pytest.approx(small["frechet"], rel=1e-9)


def test_generate_draws_the_same_samples_for_the_same_seed(vae_run: Path) -> None:
    model = load_run(vae_run).model
    a, b = generate(model, 50, batch_size=20, seed=3), generate(model, 50, batch_size=20, seed=3)
    assert a.shape == (50, 1, 8, 8) and torch.equal(a, b)
    assert not torch.equal(a, generate(model, 50, batch_size=20, seed=4))


def test_score_conditional_run_reports_class_accuracy(cgan_run: Path, classifier) -> None:
    out = score_run(load_run(cgan_run), classifier, n=200, batch_size=64)
    assert 0.0 <= out["class_accuracy"] <= 1.0 and np.isfinite(out["frechet"])


def test_cli_score_prints_json(vae_run: Path, digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["score", str(vae_run), "--classifier", str(digits_run), "--n", "100", "--batch-size", "50"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_generated"] == 100 and out["frechet"] > 0 and out["model"] == "vae_mlp"


@pytest.mark.parametrize(
    "swap, extra, message",
    [
        (True, [], "is not an image classifier"),
        (False, ["--steps", "5"], "--steps applies to diffusion models only"),
        (False, ["--n", "1"], "at least 2 samples"),
    ],
)
def test_cli_score_bad_input(
    vae_run: Path, digits_run: Path, capsys: pytest.CaptureFixture[str], swap: bool, extra: list[str], message: str
) -> None:
    run, clf = (digits_run, vae_run) if swap else (vae_run, digits_run)
    assert main(["score", str(run), "--classifier", str(clf), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_score_a_classifier_run_is_not_generative(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(digits_run), "--classifier", str(digits_run), "--n", "10"]) == 2
    assert "does not generate images" in capsys.readouterr().err
