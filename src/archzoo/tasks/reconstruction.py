r"""Reconstruction objectives: autoencoders, anomaly detection, the VAE's ELBO and the VQ-VAE loss.

What every generative task shares (the pixel range, metric sums, sample grids)
is in :mod:`archzoo.tasks.generative`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks import pictures
from archzoo.tasks.base import ExportInput, Picture
from archzoo.tasks.generative import GenerativeTask, eval_mode
from archzoo.utils import gather_across_ranks, sum_across_ranks, unwrap

# ---------------------------------------------------------------------------
# autoencoders
# ---------------------------------------------------------------------------

LOSSES = ("mse", "bce")


def reconstruction_loss(recon: Tensor, x: Tensor, kind: str) -> Tensor:
    """Per-sample reconstruction error, mean over pixels, ``(B,)``: MSE or binary cross-entropy."""
    if kind == "mse":
        err = (recon - x).pow(2)
    else:
        # binary_cross_entropy raises under CUDA autocast ("unsafe to autocast"): run it in float32 outside it.
        with torch.autocast(recon.device.type, enabled=False):
            err = F.binary_cross_entropy(recon.float().clamp(1e-6, 1 - 1e-6), x.float(), reduction="none")
    return err.flatten(1).mean(1)


def reconstruction_errors(model: nn.Module, x: Tensor, kind: str = "mse") -> Tensor:
    """Anomaly scores: the per-sample reconstruction error of ``model.reconstruct(x)``, ``(B,)``."""
    return reconstruction_loss(unwrap(model).reconstruct(x), x, kind)


def anomaly_auc(scores: Tensor | np.ndarray, is_anomaly: Tensor | np.ndarray) -> float:
    """ROC-AUC of anomaly ``scores`` (higher = more anomalous) against 0/1 labels; NaN with one class only."""
    from sklearn.metrics import roc_auc_score

    s = np.asarray(scores.detach().float().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    y = np.asarray(is_anomaly.cpu() if isinstance(is_anomaly, Tensor) else is_anomaly).astype(np.int64)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, s))


class AutoencoderTask(GenerativeTask):
    r"""Reconstruction of the input: :math:`\ell(x, \hat x)` averaged over pixels.

    ``"mse"``: :math:`\frac1D\lVert x - \hat x\rVert^2`; ``"bce"``:
    :math:`-\frac1D\sum_i x_i\log\hat x_i + (1-x_i)\log(1-\hat x_i)` (needs a sigmoid output).
    A denoising autoencoder corrupts its own input in training mode (``noise_std``), so the
    target here is always the clean :math:`x`. Grids show inputs beside reconstructions.

    Args:
        loss: ``"mse"`` or ``"bce"`` (default ``"mse"``).
        sample_every: reconstruction grid every this many epochs (default 5).
        num_samples: images in the grid (default 32).

    Metrics: ``loss``, ``mse``.
    """

    #: An autoencoder's product is its reconstruction, one forward pass of the input (``archzoo export``).
    export_refusal = None

    monitor = "val/loss"
    mode = "min"

    def __init__(self, loss: str = "mse", sample_every: int = 5, num_samples: int = 32) -> None:
        super().__init__(sample_every, num_samples)
        if loss not in LOSSES:
            raise UserError(f"Unknown reconstruction loss '{loss}'; choose mse or bce.")
        self.kind = loss

    def setup(self, model: nn.Module, info: dict[str, Any], device: torch.device) -> None:
        super().setup(model, info, device)
        if self.kind == "bce" and tuple(getattr(unwrap(model), "data_range", None) or ()) != (0.0, 1.0):
            raise UserError("loss=bce needs a model with outputs in [0, 1] (output=sigmoid).")

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x = self.to_model_range(model, batch[0])
        recon = model(x)  # corrupted input in training mode for a denoising AE
        per = reconstruction_loss(recon, x, self.kind)
        mse = (recon.detach() - x).pow(2).flatten(1).mean(1)
        return per.mean(), {"mse": mse.mean()}

    def export_inputs(
        self, model: nn.Module, batch: Any, size: int | None = None, vary: bool = False
    ) -> list[ExportInput]:
        """The images in the model's range (as :meth:`loss` feeds them), the first dimension dynamic."""
        return [ExportInput("x", self.to_model_range(model, batch[0][:size]), {0: "batch"})]

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        x = self.to_model_range(model, batch[0])
        if split == "val":
            self.keep_inputs(x)
        recon = model(x)
        per = reconstruction_loss(recon, x, self.kind)
        self.acc(split).add(x.shape[0], loss=per, mse=(recon - x).pow(2).flatten(1).mean(1))

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> list[Picture] | None:
        path = self.grid_path(epoch, run_dir)
        if path is None or self.fixed is None:
            return None
        return [pictures.reconstructions(unwrap(model), self.fixed, path)]


class AnomalyTask(AutoencoderTask):
    r"""Anomaly detection by reconstruction error: train on ``normal_classes`` only, score every sample.

    The score of :math:`x` is its reconstruction error :math:`\frac1D\lVert x - \hat x\rVert^2`
    (or BCE); samples of the other classes are the anomalies. Validation loss is measured on
    normal samples (the checkpoint is chosen without looking at anomalies); ``auc`` is the
    ROC-AUC of the scores for "is an anomaly" over the whole split.

    Args:
        normal_classes: labels treated as normal (default ``(0,)``).
        loss: ``"mse"`` or ``"bce"`` (default ``"mse"``).
        sample_every: grid every this many epochs (default 5).

    Metrics: ``loss`` (normal samples), ``auc``, ``score_normal``, ``score_anomaly``.
    """

    def __init__(self, normal_classes: Sequence[int] = (0,), loss: str = "mse", sample_every: int = 5) -> None:
        super().__init__(loss, sample_every)
        if not normal_classes:
            raise UserError("normal_classes must name at least one class.")
        self.normal = torch.tensor(sorted({int(c) for c in normal_classes}))
        self.scores: dict[str, list[tuple[Tensor, Tensor]]] = {}

    def is_normal(self, y: Tensor) -> Tensor:
        return torch.isin(y, self.normal.to(y.device))

    def training_step(self, model: nn.Module, batch: Any, ctx: Any) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        keep = self.is_normal(y)
        if not bool(keep.any()):
            return {"loss": x.new_zeros(())}
        with ctx.autocast():
            loss, logs = self.loss(model, (x[keep],))
        ctx.backward(loss)
        ctx.step()
        return {"loss": loss.detach(), **logs}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        x, y = self.to_model_range(model, batch[0]), batch[1]
        normal = self.is_normal(y)
        if split == "val" and bool(normal.any()):
            self.keep_inputs(x[normal])
        score = reconstruction_loss(model(x), x, self.kind)  # (B,)
        self.scores.setdefault(split, []).append((score.detach().float().cpu(), (~normal).cpu()))
        if bool(normal.any()):
            self.acc(split).add(int(normal.sum()), loss=score[normal])

    def compute(self, split: str) -> dict[str, float]:
        out = super().compute(split)
        pairs = self.scores.pop(split, [])
        s = torch.cat([p[0] for p in pairs]) if pairs else torch.zeros(0)
        a = torch.cat([p[1] for p in pairs]) if pairs else torch.zeros(0, dtype=torch.bool)
        gathered = gather_across_ranks((s, a))
        if len(gathered) > 1:
            s = torch.cat([g[0] for g in gathered])
            a = torch.cat([g[1] for g in gathered])
        if len(s):
            out[f"{split}/auc"] = anomaly_auc(s, a)
            if bool(a.any()):
                out[f"{split}/score_anomaly"] = float(s[a].mean())
            if bool((~a).any()):
                out[f"{split}/score_normal"] = float(s[~a].mean())
        return out


# ---------------------------------------------------------------------------
# VAE
# ---------------------------------------------------------------------------


def vae_terms(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""One-sample ELBO terms per sample: :math:`-\log p(x\mid z)`, :math:`z \sim q(z\mid x)`, and the
    closed-form :math:`\mathrm{KL}(q(z\mid x)\,\|\,p(z))`; plus the posterior mean. Each ``(B,)`` / ``(B, d)``.

    ``model`` may be DDP-wrapped: its forward runs through the wrapper.
    """
    m = unwrap(model)
    out = model(x)
    rec = -m.log_likelihood(x, out.out)  # -log p(x|z), (B,)
    kl = m.kl_divergence(out.mu, out.logvar)  # (B,)
    return rec, kl, out.mu


@torch.no_grad()
def iwae_log_likelihood(
    model: nn.Module, x: Tensor, k: int, generator: torch.Generator | None = None, max_rows: int = 8192
) -> Tensor:
    r"""Importance-weighted estimate of :math:`\log p(x)` (Burda, Grosse & Salakhutdinov 2016,
    https://arxiv.org/abs/1509.00519), ``(B,)`` in nats:

    .. math::
        \log \hat p_k(x) = \log \frac1k \sum_{i=1}^k \frac{p(x \mid z_i)\, p(z_i)}{q(z_i \mid x)},
        \quad z_i \sim q(z \mid x).

    Its expectation is a lower bound on :math:`\log p(x)` that increases with :math:`k`;
    :math:`k = 1` is the one-sample ELBO. The :math:`k` samples are drawn in chunks of at
    most ``max_rows`` decoder inputs.
    """
    m = unwrap(model)
    mu, logvar = m.encode(x)  # (B, d)
    b = x.shape[0]
    chunk = max(1, min(k, max_rows // max(b, 1)))
    log_w = []
    done = 0
    while done < k:
        kc = min(chunk, k - done)
        mu_k = mu.unsqueeze(0).expand(kc, *mu.shape)  # (kc, B, d)
        lv_k = logvar.unsqueeze(0).expand(kc, *logvar.shape)
        z = m.reparameterize(mu_k, lv_k, generator)  # (kc, B, d)
        out = m.decode_raw(z.reshape(kc * b, -1))  # (kc*B, C, H, W)
        xk = x.unsqueeze(0).expand(kc, *x.shape).reshape(kc * b, *x.shape[1:])  # (kc*B, C, H, W)
        ll = m.log_likelihood(xk, out).view(kc, b)  # log p(x|z_i)
        # log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)
        log_w.append(ll + m.log_prior(z) - m.log_posterior(z, mu_k, lv_k))
        done += kc
    lw = torch.cat(log_w, 0)  # (k, B)
    return torch.logsumexp(lw, 0) - math.log(k)


class VAETask(GenerativeTask):
    r"""The negative :math:`\beta`-ELBO (Kingma & Welling 2014; Higgins et al. 2017):

    .. math::
        \mathcal L_\beta(x) = -\mathbb E_{q(z\mid x)}[\log p(x \mid z)] + \beta\,\mathrm{KL}(q(z\mid x)\,\|\,p(z)),

    estimated with one reparameterised sample and the closed-form KL, in nats per
    image (summed over pixels). Evaluation reports the true bound (:math:`\beta = 1`),
    ``neg_elbo``, and the importance-weighted bound ``nll_iwae{k}``
    (:func:`iwae_log_likelihood`), with ``k = val_k`` on validation and ``test_k`` on test.

    Args:
        beta: KL weight :math:`\beta` (default 1).
        test_k: importance samples for the test log-likelihood, 0 to skip (default 64).
        val_k: importance samples on validation, 0 to skip (default 8).
        binarize: draw binary images :math:`x \sim \mathrm{Bernoulli}(x)` (dynamic binarisation in
            training, a fixed seed in evaluation), the usual protocol for likelihoods on MNIST (default False).
        sample_every: sample grid every this many epochs (default 5).
        num_samples: samples per grid (default 64).

    Metrics: ``loss`` (:math:`\beta`-weighted), ``neg_elbo``, ``recon``, ``kl``, ``nll_iwae{k}``.
    """

    monitor = "val/neg_elbo"
    mode = "min"

    def __init__(
        self,
        beta: float = 1.0,
        test_k: int = 64,
        val_k: int = 8,
        binarize: bool = False,
        sample_every: int = 5,
        num_samples: int = 64,
    ) -> None:
        super().__init__(sample_every, num_samples)
        if beta < 0 or test_k < 0 or val_k < 0:
            raise UserError("beta, test_k and val_k must be non-negative.")
        self.beta = float(beta)
        self.k = {"val": int(val_k), "test": int(test_k)}
        self.binarize = binarize
        self.eval_gen: dict[str, torch.Generator] = {}

    def _binary(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if not self.binarize:
            return x
        u = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
        return (u.to(x.device) < x).to(x.dtype)

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x = self._binary(self.to_model_range(model, batch[0]), None)
        rec, kl, _ = vae_terms(model, x)
        loss = (rec + self.beta * kl).mean()  # -E[log p(x|z)] + beta KL
        return loss, {"recon": rec.mean().detach(), "kl": kl.mean().detach(), "neg_elbo": (rec + kl).mean().detach()}

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        gen = self.eval_gen.setdefault(split, self.generator(1))
        x = self._binary(self.to_model_range(model, batch[0]), gen)
        if split == "val":
            self.keep_inputs(x, 32)
        m = unwrap(model)
        mu, logvar = m.encode(x)
        z = m.reparameterize(mu, logvar, gen)  # seeded, so validation numbers are comparable across epochs
        rec = -m.log_likelihood(x, m.decode_raw(z))
        kl = m.kl_divergence(mu, logvar)
        metrics = {"loss": rec + self.beta * kl, "neg_elbo": rec + kl, "recon": rec, "kl": kl}
        k = self.k.get(split, self.k["test"])
        if k > 0:
            metrics[f"nll_iwae{k}"] = -iwae_log_likelihood(model, x, k, gen)
        self.acc(split).add(x.shape[0], **metrics)

    def compute(self, split: str) -> dict[str, float]:
        self.eval_gen.pop(split, None)
        return super().compute(split)

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> list[Picture] | None:
        path = self.grid_path(epoch, run_dir)
        if path is None:
            return None
        m = unwrap(model)
        with eval_mode(m):
            imgs = m.sample(self.num_samples, generator=self.generator())
        out = [Picture(path, "grid", imgs, value_range=m.data_range)]
        if self.fixed is not None:
            out.append(pictures.reconstructions(m, self.fixed, path.with_name(f"recon_{path.name}")))
        return out


# ---------------------------------------------------------------------------
# VQ-VAE
# ---------------------------------------------------------------------------


class VQVAETask(GenerativeTask):
    r"""The VQ-VAE objective (van den Oord et al. 2017):

    .. math::
        \mathcal L = \tfrac1D\lVert x - \hat x\rVert^2 + \lVert \mathrm{sg}[z_e] - e\rVert^2
        + \beta\,\lVert z_e - \mathrm{sg}[e]\rVert^2

    (the codebook term is 0 with EMA codebook updates). ``perplexity`` is
    :math:`\exp(-\sum_j p_j\log p_j)` of the code usage :math:`p` over the whole split:
    it reaches ``num_codes`` when all codes are used equally.

    Args:
        beta: commitment weight :math:`\beta` (default 0.25).
        sample_every: reconstruction grid every this many epochs (default 5).

    Metrics: ``loss``, ``recon``, ``codebook``, ``commitment``, ``perplexity``.
    """

    monitor = "val/recon"
    mode = "min"

    def __init__(self, beta: float = 0.25, sample_every: int = 5) -> None:
        super().__init__(sample_every, 32)
        self.beta = float(beta)
        self.usage: dict[str, Tensor] = {}

    def _terms(self, model: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        out = model(x)
        recon = F.mse_loss(out.recon, x)
        loss = recon + out.codebook_loss + self.beta * out.commitment_loss
        logs = {
            "recon": recon.detach(),
            "codebook": out.codebook_loss.detach(),
            "commitment": out.commitment_loss.detach(),
            "perplexity": out.perplexity.detach(),
        }
        return loss, logs, out.indices

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        loss, logs, _ = self._terms(model, self.to_model_range(model, batch[0]))
        return loss, logs

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        x = self.to_model_range(model, batch[0])
        if split == "val":
            self.keep_inputs(x)
        loss, logs, idx = self._terms(model, x)
        logs.pop("perplexity")
        self.acc(split).add(x.shape[0], loss=loss, **logs)
        k = unwrap(model).quantizer.num_codes
        counts = torch.bincount(idx.flatten(), minlength=k).float()
        self.usage[split] = self.usage[split] + counts if split in self.usage else counts

    def compute(self, split: str) -> dict[str, float]:
        out = super().compute(split)
        counts = self.usage.pop(split, None)
        if counts is not None:
            sum_across_ranks(counts)
            p = counts / counts.sum().clamp(min=1)
            out[f"{split}/perplexity"] = float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))
        return out

    def on_epoch_end(self, model: nn.Module, epoch: int, run_dir: Path | None) -> list[Picture] | None:
        path = self.grid_path(epoch, run_dir)
        if path is None or self.fixed is None:
            return None
        return [pictures.reconstructions(unwrap(model), self.fixed, path)]


# ---------------------------------------------------------------------------
# registered builders
# ---------------------------------------------------------------------------


@register_task("autoencoder")
def autoencoder(loss: str = "mse", sample_every: int = 5, num_samples: int = 32) -> AutoencoderTask:
    return AutoencoderTask(loss, sample_every, num_samples)


@register_task("anomaly")
def anomaly(normal_classes: Sequence[int] = (0,), loss: str = "mse", sample_every: int = 5) -> AnomalyTask:
    return AnomalyTask(normal_classes, loss, sample_every)


@register_task("vae")
def vae(
    beta: float = 1.0,
    test_k: int = 64,
    val_k: int = 8,
    binarize: bool = False,
    sample_every: int = 5,
    num_samples: int = 64,
) -> VAETask:
    return VAETask(beta, test_k, val_k, binarize, sample_every, num_samples)


@register_task("vqvae")
def vqvae(beta: float = 0.25, sample_every: int = 5) -> VQVAETask:
    return VQVAETask(beta, sample_every)
