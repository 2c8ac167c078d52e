"""Sampling options shared by the generative tasks: ``archzoo sample RUN --n 64 --class 3 --steps 50``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archzoo.tasks.base import Option


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

    def sample(self, run: Any, out_dir: Path, **options: Any) -> list[Path]:
        from archzoo.errors import UserError
        from archzoo.viz.sampling import sample_run

        method = options.get("method")
        if method is not None and method not in ("ddpm", "ddim"):
            raise UserError(f"--method must be ddpm or ddim, got '{method}'.")
        return sample_run(
            run, options["n"], options.get("class"), options.get("steps"), options.get("guidance"), out_dir,
            options["seed"], method,
        )  # fmt: skip
