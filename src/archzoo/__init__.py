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

__all__ = [
    "create_model",
    "list_datasets",
    "list_models",
    "list_recipes",
    "register_dataset",
    "register_model",
    "register_task",
]
