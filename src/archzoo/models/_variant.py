"""Registered variants as thin builders whose arguments and defaults come from the model class.

A variant such as ``resnet18`` only fixes the arguments that make it ResNet-18 and
passes the user's on::

    @register_model()
    @variant(ResNet, RESNET_ARGS)
    def resnet18(**kwargs: Any) -> ResNet:
        return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)

:func:`variant` gives the builder the signature of the listed parameters of the
class, so the defaults are written once, on the class, and ``inspect.signature``
(which the registry's argument check and the engine's ``build_model`` read) still
lists ``num_classes``, ``in_channels``, ``image_size``... A variant that differs
from the class default for an argument (``resnet20`` has 10 classes and the small
stem) says so in the decorator, once. The builder receives every published
argument, defaults filled in, as keywords.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def variant(
    base: Callable[..., Any],
    names: Sequence[str],
    *,
    extra: Iterable[tuple[Callable[..., Any], Sequence[str]]] = (),
    **defaults: Any,
) -> Callable[[F], F]:
    """Publish ``names`` of ``base``'s parameters (and those of ``extra``) as the builder's signature.

    Args:
        base: the class (or function) whose parameters the builder forwards.
        names: which of its parameters the builder accepts, in the order to list them.
        extra: ``(callable, names)`` pairs for parameters taken from other callables
            (a builder that assembles two modules).
        **defaults: defaults that differ from the source's for this variant.

    The builder's own parameters that have a default (``arch="dcgan"``) are published
    after the forwarded ones; its parameters without a default must be forwarded ones
    and receive their value by name; ``**kwargs`` receives the other forwarded ones.
    """

    def deco(fn: F) -> F:
        params: dict[str, inspect.Parameter] = {}
        for source, keys in ((base, names), *extra):
            source_params = inspect.signature(source).parameters
            for key in keys:
                if key not in source_params or source_params[key].kind not in _NAMED:
                    raise TypeError(f"{fn.__name__}: {getattr(source, '__name__', source)} has no parameter '{key}'")
                params[key] = source_params[key].replace(kind=inspect.Parameter.KEYWORD_ONLY)
        unknown = set(defaults) - set(params)
        if unknown:
            raise TypeError(f"{fn.__name__}: defaults for parameters it does not forward: {sorted(unknown)}")
        for key, value in defaults.items():
            params[key] = params[key].replace(default=value)
        for key, p in inspect.signature(fn).parameters.items():
            if p.kind not in _NAMED:
                continue
            if p.default is not p.empty:
                params[key] = p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            elif key not in params:
                raise TypeError(f"{fn.__name__}: parameter '{key}' has no default and is not forwarded")
        # Keyword-only in the builder's own view; published as ordinary parameters, as the builders were.
        published = [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params.values()]
        sig = inspect.Signature(published, return_annotation=inspect.signature(fn).return_annotation)

        @functools.wraps(fn)
        def builder(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            return fn(**bound.arguments)

        builder.__signature__ = sig  # type: ignore[attr-defined]
        return builder  # type: ignore[return-value]

    return deco
