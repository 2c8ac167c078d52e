"""``archzoo sample RUN``: what the generative tasks draw, with the options they share.

``--n 64 --class 3 --steps 50 --guidance 4 --method ddim --seed 0``. Writes into
``RUN/samples/`` (or ``--out``): ``samples.safetensors`` (the raw tensor in the
model's ``data_range``) and the pictures ``samples.png``; for autoencoders and VAEs
also ``reconstructions.png`` (inputs beside reconstructions) and
``interpolation.png`` (latent interpolation between test images); for a VAE with a
2-D latent, ``latent_scatter.png`` coloured by class. Pictures are returned as data
(:class:`~archzoo.tasks.base.Picture`) and drawn by viz.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from archzoo.errors import UserError
from archzoo.tasks import pictures
from archzoo.tasks.base import Option, Picture


class ImageSampling:
    """A mixin for tasks whose models ``sample`` images or points, or reconstruct them (autoencoders)."""

    sample_options: dict[str, Option] = {
        "n": Option(int, 64, "number of samples"),
        "class": Option(int, None, "class to sample (conditional models)"),
        "steps": Option(int, None, "sampling steps (diffusion: fewer steps use DDIM)"),
        "guidance": Option(float, None, "classifier-free guidance weight (conditional diffusion)"),
        "method": Option(str, None, "diffusion sampler: ddpm or ddim (default ddpm, ddim with --steps)"),
        "seed": Option(int, 0, "seed of the sampling noise"),
    }

    def sample(self, run: Any, out_dir: Path, **options: Any) -> list[Path | Picture]:
        method = options.get("method")
        if method is not None and method not in ("ddpm", "ddim"):
            raise UserError(f"--method must be ddpm or ddim, got '{method}'.")
        return sample_outputs(
            run, options["n"], options.get("class"), options.get("steps"), options.get("guidance"), out_dir,
            options["seed"], method,
        )  # fmt: skip


def sample_kwargs(
    model: Any,
    n: int,
    label: int | None,
    steps: int | None,
    guidance: float | None,
    seed: int,
    method: str | None = None,
) -> dict[str, Any]:
    params = inspect.signature(model.sample).parameters
    kw: dict[str, Any] = {}
    device = next(model.parameters()).device
    if "generator" in params:
        # A CPU generator, as the tasks use for their grids: the models draw noise on the
        # generator's device and move it, so a seed gives the same samples on CPU and GPU.
        kw["generator"] = torch.Generator().manual_seed(seed)
    if label is not None:
        if not getattr(model, "is_conditional", False) or "labels" not in params:
            raise UserError("--class was given, but this model is unconditional.")
        k = int(getattr(model, "num_classes", 0) or 0)
        if not 0 <= label < k:
            raise UserError(f"--class must be between 0 and {k - 1} for this model, got {label}.")
        kw["labels"] = torch.full((n,), label, dtype=torch.long, device=device)
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps must be at least 1, got {steps}.")
        if "steps" not in params:
            raise UserError("--steps applies to diffusion models only; this model samples in one pass.")
        kw["steps"] = steps
        if "method" in params and method is None:
            method = "ddim"  # a shortened schedule is what DDIM is for
    if method is not None:
        if "method" not in params:
            raise UserError("--method applies to diffusion models only.")
        kw["method"] = method
    if guidance is not None:
        if "guidance" not in params:
            raise UserError("--guidance applies to class-conditional diffusion models only.")
        kw["guidance"] = guidance
    return kw


def sample_outputs(
    trainer: Any,
    n: int,
    label: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    out: Path | None = None,
    seed: int = 0,
    method: str | None = None,
) -> list[Path | Picture]:
    """The samples of a trained generative run: the raw tensor (written) and the pictures to draw."""
    from archzoo.utils import unwrap

    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}.")
    model = unwrap(trainer.model).eval()
    is_ae = hasattr(model, "encode") and hasattr(model, "decode")
    if not hasattr(model, "sample") and not is_ae:
        raise UserError(f"Run {trainer.run_dir} holds a {type(model).__name__}, which is not a generative model.")
    out = Path(out) if out else trainer.run_dir / "samples"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path | Picture] = []
    value_range = getattr(model, "data_range", None)
    with torch.no_grad():
        if hasattr(model, "sample"):
            x = model.sample(n, **sample_kwargs(model, n, label, steps, guidance, seed, method)).float().cpu()
            save_file({"samples": x.contiguous()}, str(out / "samples.safetensors"))
            written.append(out / "samples.safetensors")
            if x.dim() == 4:
                written.append(Picture(out / "samples.png", "grid", x, value_range=value_range))
            else:
                written.append(Picture(out / "samples.png", "points", x))
        elif label is not None or steps is not None:
            raise UserError("--class and --steps apply to sampling models; this autoencoder only reconstructs.")
        if is_ae:
            from archzoo.data.splits import example_batch
            from archzoo.tasks.generative import PixelRange

            split = trainer.data.test or trainer.data.val
            xs, ys = example_batch(split, 2000)[:2]
            x = PixelRange.from_info(trainer.info, model)(xs[:64].to(trainer.device))
            written.append(pictures.reconstructions(model, x[:32], out / "reconstructions.png"))
            if len(x) >= 2:
                written.append(pictures.interpolation(model, x[0:1], x[1:2], 10, out / "interpolation.png"))
            if getattr(model, "latent_dim", None) == 2:
                xa = PixelRange.from_info(trainer.info, model)(xs.to(trainer.device))
                written.append(pictures.latent_means(model, xa, ys, out / "latent_scatter.png"))
    return written
