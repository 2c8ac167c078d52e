"""Tests for archzoo.models._variant: thin builders publish the class's parameters and defaults."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from archzoo.errors import UserError
from archzoo.models._variant import variant
from archzoo.registry import MODELS, Registry


class Net:
    def __init__(self, depth: int, width: int = 8, classes: int = 10, act: str = "relu") -> None:
        self.depth, self.width, self.classes, self.act = depth, width, classes, act


@variant(Net, ("classes", "width"))
def net4(**kwargs: Any) -> Net:
    return Net(4, **kwargs)


@variant(Net, ("classes", "width"), classes=100)
def net8(**kwargs: Any) -> Net:
    return Net(8, **kwargs)


def test_signature_lists_the_forwarded_parameters_with_the_class_defaults() -> None:
    sig = inspect.signature(net4)
    assert list(sig.parameters) == ["classes", "width"]
    assert [p.default for p in sig.parameters.values()] == [10, 8]
    assert inspect.signature(net8).parameters["classes"].default == 100


def test_the_builder_gets_every_argument_filled_in() -> None:
    n = net8(width=3)
    assert (n.depth, n.width, n.classes, n.act) == (8, 3, 100, "relu")
    assert net4(5).classes == 5  # positional, in the published order
    with pytest.raises(TypeError):
        net4(act="gelu")  # not accepted by this variant


def test_own_parameters_and_extra_sources() -> None:
    def extra_source(steps: int = 50) -> None: ...

    @variant(Net, ("classes",), extra=[(extra_source, ("steps",))])
    def combo(mode: str = "a", *, classes: int, steps: int) -> tuple[str, int, int]:
        return mode, classes, steps

    assert list(inspect.signature(combo).parameters) == ["classes", "steps", "mode"]
    assert combo() == ("a", 10, 50)
    assert combo(steps=3, mode="b") == ("b", 10, 3)


def test_mistakes_are_caught_when_the_builder_is_defined() -> None:
    with pytest.raises(TypeError, match="no parameter 'colour'"):
        variant(Net, ("colour",))(lambda **kw: None)
    with pytest.raises(TypeError, match="does not forward"):
        variant(Net, ("classes",), width=3)(lambda **kw: None)

    def needs(*, depth: int) -> None: ...

    with pytest.raises(TypeError, match="'depth' has no default"):
        variant(Net, ("classes",))(needs)


def test_the_registry_checks_arguments_against_the_published_signature() -> None:
    reg = Registry("model")
    reg.register("net4")(net4)
    with pytest.raises(UserError, match="it accepts: classes, width"):
        reg.create("net4", act="gelu")


@pytest.mark.parametrize("name", ["resnet18", "resnet20", "efficientnet_b2", "mobilenet_v2", "vgg16", "ddpm_unet"])
def test_registered_variants_expose_the_data_keys(name: str) -> None:
    params = inspect.signature(MODELS.get(name)).parameters
    assert "in_channels" in params
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
