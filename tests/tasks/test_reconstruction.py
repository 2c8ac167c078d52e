"""Tests for archzoo.tasks.reconstruction: AE/anomaly/VAE/VQ-VAE objectives, IWAE bounds, grids."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from archzoo.engine.context import OptimizerSlot, TrainContext
from archzoo.errors import UserError
from archzoo.models.autoencoder import MLPAutoencoder
from archzoo.models.vae import MLPVAE
from archzoo.models.vqvae import VQVAE
from archzoo.registry import create_task
from archzoo.tasks.reconstruction import (
    AnomalyTask,
    AutoencoderTask,
    VAETask,
    VQVAETask,
    anomaly_auc,
    iwae_log_likelihood,
)
from archzoo.viz.sampling import draw_outputs

CPU = torch.device("cpu")


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def _ctx(module: torch.nn.Module, lr: float = 1e-2) -> TrainContext:
    return TrainContext({"main": OptimizerSlot(torch.optim.Adam(module.parameters(), lr=lr), module)}, CPU)


def _params(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()]).clone()


def test_autoencoder_loss_and_training_step() -> None:
    torch.manual_seed(0)
    m = MLPAutoencoder(1, 4, hidden_dims=(8,), latent_dim=2)
    task = create_task("autoencoder")
    task.setup(m, {"mean": [0.5], "std": [0.5]}, CPU)
    x = torch.rand(6, 1, 4, 4)
    normed = (x - 0.5) / 0.5
    loss, logs = task.loss(m, (normed, torch.zeros(6)))
    torch.testing.assert_close(loss, F.mse_loss(m(x), x))
    before = _params(m)
    out = task.training_step(m, (normed, torch.zeros(6)), _ctx(m))
    assert set(out) == {"loss", "mse"} and not torch.equal(before, _params(m))
    m.eval()
    with torch.no_grad():
        task.eval_step(m, (normed,), "val")
    res = task.compute("val")
    assert set(res) == {"val/loss", "val/mse"}
    assert task.compute("val") == {}  # compute resets


def test_bce_needs_a_sigmoid_model() -> None:
    task = AutoencoderTask(loss="bce")
    with pytest.raises(UserError, match="bce"):
        task.setup(MLPAutoencoder(1, 4, hidden_dims=(8,), latent_dim=2, output="tanh"), {}, CPU)
    with pytest.raises(UserError):
        AutoencoderTask(loss="l1")


def test_anomaly_auc_matches_hand_computation() -> None:
    # pairs (anomaly, normal): (0.35 > 0.1), (0.35 < 0.4), (0.8 > 0.1), (0.8 > 0.4) -> 3/4
    assert anomaly_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.75)
    assert anomaly_auc([0.1, 0.2, 0.9], [0, 0, 1]) == 1.0
    assert math.isnan(anomaly_auc([0.1, 0.2], [0, 0]))


def test_anomaly_task_trains_on_normal_classes_only() -> None:
    torch.manual_seed(0)
    m = MLPAutoencoder(1, 4, hidden_dims=(8,), latent_dim=2)
    task = AnomalyTask(normal_classes=[0])
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([1, 2, 1, 3])
    before = _params(m)
    task.training_step(m, (x, y), _ctx(m))
    assert torch.equal(before, _params(m))  # no normal sample in the batch: no step
    task.training_step(m, (x, torch.tensor([0, 2, 0, 3])), _ctx(m))
    assert not torch.equal(before, _params(m))
    m.eval()
    with torch.no_grad():
        task.eval_step(m, (x, torch.tensor([0, 0, 1, 1])), "test")
    res = task.compute("test")
    assert {"test/loss", "test/auc", "test/score_normal", "test/score_anomaly"} <= set(res)
    assert 0.0 <= res["test/auc"] <= 1.0


def _tiny_vae(seed: int = 0) -> MLPVAE:
    torch.manual_seed(seed)
    return MLPVAE(1, 4, hidden_dims=(16,), latent_dim=2).eval()


def test_vae_loss_is_negative_beta_elbo() -> None:
    m = _tiny_vae()
    x = (torch.rand(5, 1, 4, 4) > 0.5).float()
    torch.manual_seed(1)
    l0, logs = VAETask(beta=0.0).loss(m, (x,))
    torch.manual_seed(1)
    l3, _ = VAETask(beta=3.0).loss(m, (x,))
    mu, logvar = m.encode(x)
    kl = m.kl_divergence(mu, logvar).mean()
    torch.testing.assert_close(l3 - l0, 3 * kl, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(logs["neg_elbo"], l0.detach() + kl.detach(), atol=1e-4, rtol=1e-5)


def test_iwae_k1_equals_the_elbo_in_expectation_and_k_tightens_it() -> None:
    m = _tiny_vae()
    x = (torch.rand(2, 1, 4, 4) > 0.5).float()
    n = 4000
    xs = x.repeat(n, 1, 1, 1)  # each image n times
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mu, logvar = m.encode(xs)
        z = m.reparameterize(mu, logvar, g)
        elbo = (m.log_likelihood(xs, m.decode_raw(z)) - m.kl_divergence(mu, logvar)).view(n, 2)  # analytic KL
        iw1 = iwae_log_likelihood(m, xs, 1, g).view(n, 2)
        iw16 = iwae_log_likelihood(m, xs[: 2 * 500], 16, g).view(500, 2)
    se = (elbo.std(0) ** 2 / n + iw1.std(0) ** 2 / n).sqrt()
    assert ((iw1.mean(0) - elbo.mean(0)).abs() < 4 * se).all()  # same expectation
    assert (iw16.mean(0) > elbo.mean(0)).all()  # a tighter bound on average
    assert (iw16.mean(0) - elbo.mean(0) > 4 * se).all()


def test_vae_task_metrics_per_split() -> None:
    m = _tiny_vae()
    task = create_task("vae", test_k=4, val_k=2, binarize=True)
    task.setup(m, {}, CPU)
    x = torch.rand(3, 1, 4, 4)
    with torch.no_grad():
        task.eval_step(m, (x,), "val")
        task.eval_step(m, (x,), "test")
    val, test = task.compute("val"), task.compute("test")
    assert set(val) == {"val/loss", "val/neg_elbo", "val/recon", "val/kl", "val/nll_iwae2"}
    assert "test/nll_iwae4" in test
    with torch.no_grad():
        task.eval_step(m, (x,), "val")
    assert task.compute("val") == val  # fixed evaluation noise: the same numbers again


def test_vqvae_task_loss_and_perplexity() -> None:
    torch.manual_seed(0)
    m = VQVAE(1, 8, hidden=8, res_hidden=4, num_res_blocks=1, downsample=1, num_codes=8, code_dim=4)
    task = VQVAETask(beta=0.5)
    x = torch.rand(2, 1, 8, 8)
    torch.manual_seed(0)
    loss, logs = task.loss(m, (x,))
    out = m(x)
    torch.testing.assert_close(loss, F.mse_loss(out.recon, x) + out.codebook_loss + 0.5 * out.commitment_loss)
    # The perplexity pools the code counts of all batches of the split: exp(entropy) of that usage.
    # Codes drawn from the encoder's outputs, so that several are in use (about 6 of 8 here).
    x2 = torch.rand(3, 1, 8, 8) * 0.5
    with torch.no_grad():
        z = m.encoder(torch.cat([x, x2])).permute(0, 2, 3, 1).reshape(-1, 4)
        m.quantizer.codebook.copy_(z[torch.randperm(len(z), generator=torch.Generator().manual_seed(0))[:8]])
        task.eval_step(m.eval(), (x,), "val")
        task.eval_step(m, (x2,), "val")
        idx = m.quantizer(m.encoder(torch.cat([x, x2]))).indices
    res = task.compute("val")
    p = torch.bincount(idx.flatten(), minlength=8).float() / idx.numel()
    expected = float(torch.exp(-sum(q * torch.log(q) for q in p if q > 0)))
    assert expected > 3.0  # not the trivial one-code case
    assert res["val/perplexity"] == pytest.approx(expected, rel=1e-5)
    assert task.monitor in res


def test_sample_grids_every_n_epochs(tmp_path: Path) -> None:
    m = _tiny_vae()
    task = VAETask(sample_every=2, num_samples=6)
    draw_outputs(task.on_epoch_end(m, 1, None) or [])  # no run dir: nothing to do
    draw_outputs(task.on_epoch_end(m, 0, tmp_path) or [])
    assert not (tmp_path / "samples").exists()
    draw_outputs(task.on_epoch_end(m, 1, tmp_path) or [])  # the second epoch (0-based 1)
    assert _png_size(tmp_path / "samples" / "epoch_002.png") == (
        3 * 6 + 2,
        2 * 6 + 2,
    )  # 6 samples of 4x4, 3 per row, 2 px padding


def test_grid_inputs_are_not_the_engines_two_image_probe(tmp_path: Path) -> None:
    # The trainer probes the task with a 2-image validation batch before training; the epoch
    # grids must still show num_samples validation images (32 for the VAE).
    from archzoo.config import load_config
    from archzoo.engine.trainer import Trainer

    cfg = load_config("digits-vae", None, ["train.epochs=1", "log.progress=none", "log.plots=false", "train.threads=1"])
    tr = Trainer(cfg, run_dir=tmp_path / "run")
    assert len(tr.task.fixed) == 2  # the probe ran in the constructor
    tr.fit()
    first_val = tr.data.val.tensors[0][:32]
    assert tr.task.fixed.shape[0] == 32
    assert torch.equal(tr.task.fixed, tr.task.to_model_range(tr.model, first_val).cpu())
