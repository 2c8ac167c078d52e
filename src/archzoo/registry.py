"""Plain-dict registries for models, datasets, tasks and recipes.

Each registry maps a name to a builder. Registering a name twice warns and the
later builder wins, so a user can replace a shipped component from their own
code. Lookups of unknown names raise :class:`~archzoo.errors.UserError` with
the closest known names, which the command line prints as one sentence.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from archzoo.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """A named mapping from strings to builders.

    Args:
        kind: what the registry holds, used in messages ("model", "dataset").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            key = name or fn.__name__
            if key in self._items and self._items[key] is not fn:
                warnings.warn(f"{self.kind} '{key}' is registered twice; the later one wins", stacklevel=2)
            self._items[key] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        _load_builtins()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else f" Run 'archzoo list {self.kind}s' to see them."
            raise UserError(f"Unknown {self.kind} '{name}'.{hint}") from None

    def create(self, name: str, **kwargs: Any) -> Any:
        fn = self.get(name)
        _check_kwargs(fn, kwargs, f"{self.kind} '{name}'")
        return fn(**kwargs)

    def list(self, pattern: str = "*") -> list[str]:
        _load_builtins()
        return sorted(k for k in self._items if fnmatch.fnmatch(k, pattern))

    def __contains__(self, name: str) -> bool:
        _load_builtins()
        return name in self._items


def _check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], what: str) -> None:
    """Turn an unknown keyword into a one-sentence error naming the accepted ones."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        accepted = ", ".join(k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        raise UserError(f"{what} has no argument {', '.join(map(repr, unknown))}; it accepts: {accepted or 'none'}.")


MODELS = Registry("model")
DATASETS = Registry("dataset")
TASKS = Registry("task")

register_model = MODELS.register
register_dataset = DATASETS.register
register_task = TASKS.register


def create_model(name: str, **overrides: Any) -> Any:
    """Build a registered model; ``overrides`` are the builder's keyword arguments."""
    return MODELS.create(name, **overrides)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.list(pattern)


def create_dataset(name: str, **kwargs: Any) -> Any:
    return DATASETS.create(name, **kwargs)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.list(pattern)


def create_task(name: str, **kwargs: Any) -> Any:
    return TASKS.create(name, **kwargs)


def list_tasks(pattern: str = "*") -> list[str]:
    return TASKS.list(pattern)


def list_recipes(pattern: str = "*") -> list[str]:
    from archzoo.config import recipe_names

    return [n for n in recipe_names() if fnmatch.fnmatch(n, pattern)]


_LOADED = False


def _load_builtins() -> None:
    """Import the shipped model, dataset and task modules once so they register."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import archzoo.data  # noqa: F401
    import archzoo.models  # noqa: F401
    import archzoo.tasks  # noqa: F401
