"""archzoo: canonical neural architectures on real data, trained by one engine."""

from archzoo.registry import (
    create_model,
    list_datasets,
    list_models,
    list_recipes,
    register_dataset,
    register_model,
    register_task,
)

__version__ = "0.1.0"


def __getattr__(name: str):  # the engine loads on first use: listing and config work without it
    if name in ("train", "load_run", "Run"):
        from archzoo.engine import run

        return getattr(run, name)
    raise AttributeError(f"module 'archzoo' has no attribute '{name}'")


__all__ = [
    "Run",
    "create_model",
    "load_run",
    "train",
    "list_datasets",
    "list_models",
    "list_recipes",
    "register_dataset",
    "register_model",
    "register_task",
]
