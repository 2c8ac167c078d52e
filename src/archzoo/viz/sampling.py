"""``archzoo sample RUN`` drawn: the generative task says what (:mod:`archzoo.tasks.sampling`), viz draws it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archzoo.tasks.base import Picture
from archzoo.tasks.sampling import sample_kwargs, sample_outputs
from archzoo.viz.grid import draw

__all__ = ["draw_outputs", "sample_kwargs", "sample_run"]


def draw_outputs(outputs: list[Path | Picture]) -> list[Path]:
    """Draw the pictures among a task's outputs; returns every path (files already written, pictures drawn)."""
    return [draw(o) if isinstance(o, Picture) else Path(o) for o in outputs]


def sample_run(run: Any, *args: Any, **kwargs: Any) -> list[Path]:
    """Write the samples and pictures of a trained generative run; returns the paths written.

    Takes the arguments of :func:`archzoo.tasks.sampling.sample_outputs`.
    """
    return draw_outputs(sample_outputs(run, *args, **kwargs))
