r"""Sample quality of generative runs, measured with archzoo's own image classifier.

The Fréchet distance (Heusel et al. 2017, https://arxiv.org/abs/1706.08500 — the
formula behind FID) between Gaussians fitted to classifier features of real and
of generated images:

.. math::
    d^2 = \lVert \mu_r - \mu_g \rVert^2
          + \operatorname{Tr}\big(\Sigma_r + \Sigma_g - 2 (\Sigma_r^{1/2} \Sigma_g \Sigma_r^{1/2})^{1/2}\big)

The features are the input of the classifier's last linear layer (its
penultimate layer), so the figure depends on that classifier: compare runs
scored with the same classifier, never with Inception-based FID values. For a
class-conditional model the classifier's accuracy on samples of each requested
class is reported as well (conditional samples that look like their class).

``archzoo score RUN --classifier CLASSIFIER_RUN`` prints these figures as JSON.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from archzoo.errors import UserError


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and unbiased covariance of ``(N, D)`` features, in float64."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise UserError(
            f"Fréchet statistics need at least 2 feature vectors of shape (N, D), got {tuple(features.shape)}."
        )
    f = features.double()
    mu = f.mean(0)
    c = f - mu  # (N, D)
    return mu, c.T @ c / (f.shape[0] - 1)  # (D,), (D, D)


def _sqrt_psd(a: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues clipped)."""
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    r""":math:`d^2` between :math:`\mathcal N(\mu_1, \Sigma_1)` and :math:`\mathcal N(\mu_2, \Sigma_2)`.

    :math:`\operatorname{Tr}(\Sigma_1 \Sigma_2)^{1/2}` is taken as the sum of square roots of the
    eigenvalues of the symmetric :math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}` (similar to
    :math:`\Sigma_1 \Sigma_2`, so the same eigenvalues), which stays real and stable.
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise UserError(f"Feature dimensions differ: {tuple(mu1.shape)} against {tuple(mu2.shape)}.")
    s1 = _sqrt_psd(cov1)
    m = s1 @ cov2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    d2 = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt
    return float(d2.clamp_min(0))


def _last_linear(model: nn.Module) -> nn.Linear:
    head = model.get_classifier() if hasattr(model, "get_classifier") else model
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"{type(model).__name__} has no linear layer whose input could serve as features.")
    return linears[-1]


class ClassifierFeatures:
    """Penultimate-layer features and logits of a trained image classifier run.

    Args:
        trainer: a loaded classifier run (:func:`archzoo.engine.run.load_run`).
        batch_size: images per forward pass (default 500).
    """

    def __init__(self, trainer: Any, batch_size: int = 500) -> None:
        info = trainer.info
        if info.get("kind") != "image" or not info.get("num_classes") or trainer.cfg.task.name != "classification":
            raise UserError(f"Run {trainer.run_dir} is not an image classifier; --classifier needs one.")
        self.trainer = trainer
        self.model = trainer.model.eval()
        self.device = trainer.device
        self.batch_size = batch_size
        self.num_classes = int(info["num_classes"])
        c = int(info["in_channels"])
        self.shape = (c, *_hw(info["image_size"]))
        self.mean = torch.tensor(info.get("mean", [0.0] * c), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(info.get("std", [1.0] * c), dtype=torch.float32).view(1, -1, 1, 1)
        self.memory_format = trainer.memory_format
        self.head = _last_linear(self.model)

    def normalize(self, x: Tensor, value_range: tuple[float, float]) -> Tensor:
        """Images in ``value_range`` -> the classifier's input: to [0, 1], clamped, then ``(x - mean)/std``."""
        lo, hi = value_range
        x = ((x.float() - lo) / (hi - lo)).clamp(0, 1)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    @torch.no_grad()
    def __call__(self, x: Tensor, value_range: tuple[float, float] | None = None) -> tuple[Tensor, Tensor]:
        """Features ``(N, D)`` and logits ``(N, K)`` of images ``(N, C, H, W)``.

        ``value_range`` is the range the images are in; ``None`` means already normalised like the
        classifier's own data.
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise UserError(f"Images of shape {tuple(x.shape[1:])} do not match the classifier's input {self.shape}.")
        captured: list[Tensor] = []
        hook = self.head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].flatten(1).cpu()))
        feats, logits = [], []
        try:
            for i in range(0, len(x), self.batch_size):
                b = x[i : i + self.batch_size]
                if value_range is not None:
                    b = self.normalize(b, value_range)
                b = b.to(self.device)
                if self.memory_format is not None:
                    b = b.contiguous(memory_format=self.memory_format)
                logits.append(self.model(b).float().cpu())
                feats.append(captured.pop().float())
        finally:
            hook.remove()
        return torch.cat(feats), torch.cat(logits)


def _hw(size: Any) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def real_images(trainer: Any, split: str = "test", n: int | None = None) -> tuple[Tensor, Tensor]:
    """Normalised images and labels of a run's split (the classifier's own test set by default), on the CPU.

    A run on a GPU keeps its data there (``data.on_device``); the labels are compared with logits on the CPU.
    """
    data = {"train": trainer.data.train, "val": trainer.data.val, "test": trainer.data.test}[split]
    if data is None:
        raise UserError(f"Run {trainer.run_dir} has no {split} split.")
    from archzoo.data.splits import example_batch

    batch = example_batch(data, len(data))  # the whole split as one batch, in order
    if not (isinstance(batch, tuple) and len(batch) >= 2):
        raise UserError(f"Run {trainer.run_dir} does not hold (image, label) data to score against.")
    x, y = batch[0], batch[1]
    return (x[:n].cpu(), y[:n].cpu()) if n else (x.cpu(), y.cpu())


@torch.no_grad()
def generate(
    model: nn.Module,
    n: int,
    batch_size: int = 500,
    labels: Tensor | None = None,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    method: str | None = None,
) -> Tensor:
    """``n`` samples ``(n, C, H, W)`` on the CPU in the model's ``data_range``, drawn in batches.

    ``labels`` (length ``n``) selects classes of a conditional model; each batch gets its own seeded
    generator (``seed + batch index``), so the samples do not depend on the batch size alone.
    """
    from archzoo.viz.sampling import sample_kwargs

    if n < 2:
        raise UserError(f"Scoring needs at least 2 samples, got --n {n}.")
    if not hasattr(model, "sample") or getattr(model, "data_range", None) is None:
        raise UserError(f"{type(model).__name__} does not generate images; score takes a generative image run.")
    out = []
    for j, i in enumerate(range(0, n, batch_size)):
        b = min(batch_size, n - i)
        kw = sample_kwargs(model, b, None, steps, guidance, seed + j, method)
        if labels is not None:
            kw["labels"] = labels[i : i + b].to(next(model.parameters()).device)
        out.append(model.sample(b, **kw).float().cpu())
    return torch.cat(out)


def score_samples(
    features: ClassifierFeatures,
    real_stats: tuple[Tensor, Tensor],
    samples: Tensor,
    value_range: tuple[float, float],
    labels: Tensor | None = None,
    also_at: Sequence[int] = (),
) -> dict[str, Any]:
    """Fréchet distance of ``samples`` to ``real_stats``; with ``labels``, the classifier's accuracy on them.

    The distance is biased upward for small sample counts, so figures are comparable at equal counts
    only; ``also_at`` adds the distance of the first ``k`` samples for each smaller ``k``
    (``frechet_at``), to compare with a model that was scored on fewer samples.
    """
    f, logits = features(samples, value_range)
    if not torch.isfinite(f).all():
        raise UserError("The samples give non-finite classifier features; the generator has diverged.")
    out: dict[str, Any] = {"frechet": frechet_distance(*real_stats, *gaussian_stats(f)), "n_generated": len(samples)}
    at = sorted({int(k) for k in also_at if 2 <= int(k) < len(samples)})
    if at:
        out["frechet_at"] = {str(k): frechet_distance(*real_stats, *gaussian_stats(f[:k])) for k in at}
    if labels is not None:
        out["class_accuracy"] = float((logits.argmax(1) == labels.cpu()).float().mean())
    return out


def score_run(
    run: Any,
    classifier: Any,
    n: int = 10_000,
    batch_size: int = 500,
    steps: int | None = None,
    guidance: float | None = None,
    method: str | None = None,
    seed: int = 0,
    also_at: Sequence[int] = (),
) -> dict[str, Any]:
    """Fréchet distance (and class accuracy when conditional) of ``n`` samples of a loaded generative run.

    Real statistics come from the classifier run's test split (10,000 images for Fashion-MNIST).
    """
    from archzoo.utils import unwrap

    feats = ClassifierFeatures(classifier, batch_size)
    model = unwrap(run.model).eval()
    x_real, y_real = real_images(classifier)
    real_f, real_logits = feats(x_real)
    real_stats = gaussian_stats(real_f)
    labels = None
    if getattr(model, "is_conditional", False):
        k = int(model.num_classes)
        if k != feats.num_classes:
            raise UserError(f"The generator has {k} classes but the classifier {feats.num_classes}.")
        labels = torch.arange(n) % k  # balanced classes: 0, 1, ..., K-1, 0, ...
    t0 = time.perf_counter()
    samples = generate(model, n, batch_size, labels, seed, steps, guidance, method)
    seconds = time.perf_counter() - t0
    out = score_samples(feats, real_stats, samples, model.data_range, labels, also_at)
    return {
        "run": str(run.run_dir),
        "model": run.cfg.model.name,
        **out,
        "n_real": len(x_real),
        "sampling_seconds": round(seconds, 1),
        "sampling": {"steps": steps, "guidance": guidance, "method": method, "seed": seed},
        "classifier": str(classifier.run_dir),
        "classifier_test_acc": float((real_logits.argmax(1) == y_real).float().mean()),
    }
