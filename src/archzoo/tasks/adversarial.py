r"""Adversarial objectives: the non-saturating GAN and WGAN-GP, each owning its two optimizer steps.

The model is a :class:`~archzoo.models.gan.GAN` with ``.generator`` and
``.discriminator``. :meth:`GANTask.optimizers` names one optimizer per network
(``generator`` and ``discriminator``) with the task's default settings, which
``optim.*`` overrides for both and ``optim.slots.<name>.*`` for one (the two
time-scale update rule, Heusel et al. 2017, https://arxiv.org/abs/1706.08500, is
``optim.slots.discriminator.lr=4e-4``). ``training_step`` calls
``ctx.backward(loss, name)`` and ``ctx.step(name)`` for the discriminator, then
for the generator; the engine's loop is the same as for any other task.

Under distributed data parallel the networks are called directly (not through a
DDP wrapper, which expects a single forward per backward); the engine averages
each optimizer's gradients over the ranks before it steps.

Validation reports the losses, the mean discriminator outputs on real and
generated images and a kernel MMD between real and generated batches
(:func:`mmd2`), which selects the best checkpoint: GAN losses alone do not
measure sample quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.registry import register_task
from archzoo.tasks.base import Picture
from archzoo.tasks.generative import GenerativeTask, check_finite, eval_mode
from archzoo.utils import randn, unwrap


def gradient_penalty(
    critic: Any, real: Tensor, fake: Tensor, labels: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    r"""WGAN-GP's penalty (Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028):

    .. math::
        \mathrm{GP} = \mathbb E_{\hat x}\big[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2\big], \quad
        \hat x = \epsilon x + (1 - \epsilon)\tilde x, \ \epsilon \sim U[0, 1] \text{ per sample}.

    The graph is kept (``create_graph``) so the penalty trains the critic.

    Args:
        critic: callable ``critic(x)`` or ``critic(x, labels)`` returning ``(B,)`` scores.
        real: real images ``(B, ...)``.
        fake: generated images ``(B, ...)`` (detached).
        labels: class labels for a conditional critic.
        generator: seeds :math:`\epsilon`.
    """
    b = real.shape[0]
    g_dev = generator.device if generator is not None else real.device
    eps = torch.rand(b, *([1] * (real.dim() - 1)), generator=generator, device=g_dev).to(real)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x_hat) if labels is None else critic(x_hat, labels)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + 1e-12)  # ||grad D(x_hat)||_2, (B,)
    return (norm - 1).pow(2).mean()


def mmd2(x: Tensor, y: Tensor, scales: tuple[float, ...] = (0.05, 0.2, 1.0)) -> Tensor:
    r"""Unbiased squared maximum mean discrepancy (Gretton et al. 2012) between two samples.

    .. math::
        \mathrm{MMD}^2 = \frac{1}{n(n-1)}\sum_{i \ne j} k(x_i, x_j) + \frac{1}{m(m-1)}\sum_{i \ne j} k(y_i, y_j)
        - \frac{2}{nm}\sum_{i, j} k(x_i, y_j),

    with :math:`k(a, b) = \sum_s \exp(-\lVert a - b\rVert^2 / (D s))` on flattened vectors of size :math:`D`.
    """
    x, y = x.flatten(1).float(), y.flatten(1).float()
    d = x.shape[1]
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        return x.new_zeros(())

    def k(a: Tensor, b: Tensor) -> Tensor:
        sq = torch.cdist(a, b).pow(2) / d  # (n, m) mean squared difference per coordinate
        return sum(torch.exp(-sq / s) for s in scales)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2 * kxy.mean()


class _Frozen:
    """Turn off ``requires_grad`` of a module's parameters inside a ``with`` block."""

    def __init__(self, module: nn.Module) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)


class GANTask(GenerativeTask):
    r"""The GAN game with the non-saturating generator loss (Goodfellow et al. 2014).

    Discriminator (logits :math:`D`, :math:`\sigma` the sigmoid, one-sided label smoothing :math:`s`):

    .. math::
        \mathcal L_D = -(1 - s)\log\sigma(D(x)) - s \log(1 - \sigma(D(x))) - \log(1 - \sigma(D(G(z)))).

    Generator: :math:`\mathcal L_G = -\log\sigma(D(G(z)))`, or with feature matching
    (Salimans et al. 2016, https://arxiv.org/abs/1606.03498)
    :math:`\mathcal L_G = \lVert \mathbb E_x \phi(x) - \mathbb E_z \phi(G(z)) \rVert^2` on the
    discriminator's penultimate features :math:`\phi`.

    Both optimizers default to DCGAN's Adam at 2e-4 with betas ``(0.5, 0.999)``; set them with
    ``optim.*`` (both) or ``optim.slots.generator.*`` / ``optim.slots.discriminator.*`` (one).

    Args:
        label_smoothing: one-sided smoothing :math:`s` of the real targets, e.g. 0.1 (default 0).
        feature_matching: train the generator by feature matching (default False).
        sample_every: sample grid every this many epochs (default 1).
        num_samples: samples per grid (default 64).

    Metrics: ``loss`` (:math:`\mathcal L_D + \mathcal L_G`), ``loss_d``, ``loss_g``, ``d_real`` and ``d_fake``
    (mean :math:`\sigma(D)` on real and generated images) and, on evaluation, ``mmd``.

    The run keeps the generator of its last epoch: neither the adversarial losses nor the pixel-space
    ``mmd`` rank checkpoints by sample quality (on fashion-cgan, ``val/mmd`` was lowest after epoch 1
    of 8). ``train.monitor=val/mmd`` selects by it all the same.
    """

    monitor = None
    mode = "min"
    # DCGAN's optimizer (Radford et al. 2016): Adam at 2e-4 with beta1 = 0.5, for both networks.
    optimizer_defaults: dict[str, Any] = {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999)}

    def __init__(
        self,
        label_smoothing: float = 0.0,
        feature_matching: bool = False,
        sample_every: int = 1,
        num_samples: int = 64,
    ) -> None:
        super().__init__(sample_every, num_samples)
        if not 0.0 <= label_smoothing < 1.0:
            raise UserError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.label_smoothing = float(label_smoothing)
        self.feature_matching = feature_matching
        self.eval_gen: dict[str, torch.Generator] = {}

    def optimizers(self, model: nn.Module) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
        m = unwrap(model)
        return {
            "generator": (m.generator, dict(self.optimizer_defaults)),
            "discriminator": (m.discriminator, dict(self.optimizer_defaults)),
        }

    # --- losses ------------------------------------------------------------------
    def d_loss(self, d_real: Tensor, d_fake: Tensor) -> Tensor:
        real_t = torch.full_like(d_real, 1.0 - self.label_smoothing)  # one-sided smoothing
        return F.binary_cross_entropy_with_logits(d_real, real_t) + F.binary_cross_entropy_with_logits(
            d_fake, torch.zeros_like(d_fake)
        )

    def g_loss(self, disc: nn.Module, x: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
        if self.feature_matching:
            f_real = disc.features(x, labels).mean(0).detach()  # E_x phi(x)
            f_fake = disc.features(fake, labels).mean(0)  # E_z phi(G(z))
            return (f_real - f_fake).pow(2).sum()
        d_fake = disc(fake, labels)
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))  # -log sigma(D(G(z)))

    # --- step --------------------------------------------------------------------
    def _batch(self, model: nn.Module, batch: Any) -> tuple[nn.Module, Tensor, Tensor | None]:
        m = unwrap(model)
        x = self.to_model_range(m, batch[0])
        labels = batch[1] if getattr(m, "is_conditional", False) else None
        return m, x, labels

    def _step(self, model: nn.Module, ctx: Any, name: str, module: nn.Module, loss: Tensor) -> bool:
        if not getattr(ctx, "skip_nonfinite", False):  # with train.skip_nonfinite the context skips the step
            check_finite(loss, name)
        ctx.backward(loss, name)
        return bool(ctx.step(name))

    def training_step(self, model: nn.Module, batch: Any, ctx: Any) -> dict[str, Tensor]:
        m, x, labels = self._batch(model, batch)
        gen, disc = m.generator, m.discriminator
        z = randn((x.shape[0], m.latent_dim), None, x.device)
        with ctx.autocast():
            fake = gen(z, labels)
            d_real = disc(x, labels)
            d_fake = disc(fake.detach(), labels)
            loss_d = self.d_loss(d_real, d_fake)
        self._step(model, ctx, "discriminator", disc, loss_d)
        with _Frozen(disc), ctx.autocast():  # no gradient into D from the generator's loss
            loss_g = self.g_loss(disc, x, fake, labels)
        self._step(model, ctx, "generator", gen, loss_g)
        return {
            "loss": (loss_d + loss_g).detach(),
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(d_real.detach().float()).mean(),
            "d_fake": torch.sigmoid(d_fake.detach().float()).mean(),
        }

    # --- evaluation --------------------------------------------------------------
    def _eval_fake(self, m: nn.Module, n: int, labels: Tensor | None, split: str, device: torch.device) -> Tensor:
        gen = self.eval_gen.setdefault(split, self.generator(1))
        z = randn((n, m.latent_dim), gen, device)
        return m.generator(z, labels)

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        m, x, labels = self._batch(model, batch)
        fake = self._eval_fake(m, x.shape[0], labels, split, x.device)
        d_real, d_fake = m.discriminator(x, labels).float(), m.discriminator(fake, labels).float()
        loss_d = self.d_loss(d_real, d_fake)
        loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        self.acc(split).add(
            x.shape[0],
            loss=loss_d + loss_g,
            loss_d=loss_d,
            loss_g=loss_g,
            d_real=torch.sigmoid(d_real),
            d_fake=torch.sigmoid(d_fake),
            mmd=mmd2(x, fake),
        )

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
        return [Picture(path, "grid", imgs, nrow=self.grid_rows(m, self.num_samples), value_range=m.data_range)]


class WGANGPTask(GANTask):
    r"""Wasserstein GAN with gradient penalty (Gulrajani et al. 2017).

    Critic: :math:`\mathcal L_D = \mathbb E[D(G(z))] - \mathbb E[D(x)] + \lambda\,\mathrm{GP}`
    (:func:`gradient_penalty`); generator: :math:`\mathcal L_G = -\mathbb E[D(G(z))]`, stepped once
    every ``n_critic`` critic steps. The task counts critic optimizer steps itself (the counter is
    saved with checkpoints), so the engine calls ``training_step`` once per batch as for any task.

    Its optimizers default to the paper's Adam at 1e-4 with betas ``(0.0, 0.9)``.

    Args:
        n_critic: critic steps per generator step (default 5).
        gp_weight: :math:`\lambda` (default 10).
        sample_every: sample grid every this many epochs (default 1).
        num_samples: samples per grid (default 64).

    Metrics: ``loss`` = ``loss_d`` (the critic loss; with the penalty in training, without it in
    evaluation), ``loss_g``, ``gp`` (training), ``wdist`` (:math:`\mathbb E[D(x)] - \mathbb E[D(G(z))]`,
    the critic's Wasserstein estimate), ``d_real``, ``d_fake`` (mean critic scores) and, on evaluation, ``mmd``.
    """

    optimizer_defaults: dict[str, Any] = {"name": "adam", "lr": 1e-4, "betas": (0.0, 0.9)}

    def __init__(
        self,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        sample_every: int = 1,
        num_samples: int = 64,
    ) -> None:
        super().__init__(0.0, False, sample_every, num_samples)
        if n_critic < 1:
            raise UserError(f"n_critic must be at least 1, got {n_critic}.")
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.critic_steps = 0

    def training_step(self, model: nn.Module, batch: Any, ctx: Any) -> dict[str, Tensor]:
        m, x, labels = self._batch(model, batch)
        gen, critic = m.generator, m.discriminator
        # The generator trains on the micro-batches of every n_critic-th critic step.
        g_turn = self.critic_steps % self.n_critic == self.n_critic - 1
        z = randn((x.shape[0], m.latent_dim), None, x.device)
        with torch.set_grad_enabled(g_turn), ctx.autocast():
            fake = gen(z, labels)
        with ctx.autocast():
            d_real = critic(x, labels).float()
            d_fake = critic(fake.detach(), labels).float()
            wdist = d_real.mean() - d_fake.mean()  # E[D(x)] - E[D(G(z))]
        gp = gradient_penalty(critic, x, fake.float(), labels)
        loss_d = -wdist + self.gp_weight * gp
        if self._step(model, ctx, "discriminator", critic, loss_d):
            self.critic_steps += 1
        loss_g = -d_fake.detach().mean()
        if g_turn:
            with _Frozen(critic), ctx.autocast():
                loss_g = -critic(fake, labels).float().mean()  # -E[D(G(z))]
            self._step(model, ctx, "generator", gen, loss_g)
        return {
            "loss": loss_d.detach(),
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "gp": gp.detach(),
            "wdist": wdist.detach(),
            "d_real": d_real.detach().mean(),
            "d_fake": d_fake.detach().mean(),
        }

    def eval_step(self, model: nn.Module, batch: Any, split: str) -> None:
        m, x, labels = self._batch(model, batch)
        fake = self._eval_fake(m, x.shape[0], labels, split, x.device)
        d_real, d_fake = m.discriminator(x, labels).float(), m.discriminator(fake, labels).float()
        wdist = d_real.mean() - d_fake.mean()
        self.acc(split).add(
            x.shape[0],
            loss=-wdist,
            loss_d=-wdist,
            loss_g=-d_fake,
            wdist=wdist,
            d_real=d_real,
            d_fake=d_fake,
            mmd=mmd2(x, fake),
        )

    def optimizer_steps(self, slot: str, steps: int) -> int:
        """The generator steps once every ``n_critic`` critic steps, and its schedule is sized by that."""
        return steps // self.n_critic if slot == "generator" else steps

    def extra_state(self) -> dict[str, Any]:
        return {"critic_steps": self.critic_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.critic_steps = int(state.get("critic_steps", 0))


@register_task("gan")
def gan(
    label_smoothing: float = 0.0,
    feature_matching: bool = False,
    sample_every: int = 1,
    num_samples: int = 64,
) -> GANTask:
    return GANTask(label_smoothing, feature_matching, sample_every, num_samples)


@register_task("wgan_gp")
def wgan_gp(
    n_critic: int = 5,
    gp_weight: float = 10.0,
    sample_every: int = 1,
    num_samples: int = 64,
) -> WGANGPTask:
    return WGANGPTask(n_critic, gp_weight, sample_every, num_samples)
