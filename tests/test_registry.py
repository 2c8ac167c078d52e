"""Tests for archzoo.registry: register/create/list, duplicates, unknown names and arguments."""

from __future__ import annotations

import warnings

import pytest

from archzoo.errors import UserError
from archzoo.registry import Registry, list_datasets, list_models, list_recipes


def _fresh() -> Registry:
    reg = Registry("thing")

    @reg.register("alpha_small")
    def alpha_small(width: int = 4, depth: int = 2) -> tuple[str, int, int]:
        return ("alpha_small", width, depth)

    @reg.register("alpha_large")
    def alpha_large(width: int = 16) -> tuple[str, int]:
        return ("alpha_large", width)

    @reg.register()
    def beta(*, scale: float = 1.0) -> tuple[str, float]:
        return ("beta", scale)

    @reg.register("gamma")
    def gamma(**kwargs: object) -> dict[str, object]:
        return dict(kwargs)

    return reg


def test_register_create_and_default_name() -> None:
    reg = _fresh()
    assert reg.create("alpha_small") == ("alpha_small", 4, 2)
    assert reg.create("alpha_small", width=8) == ("alpha_small", 8, 2)
    assert reg.create("beta", scale=2.5) == ("beta", 2.5)  # registered under the function's name
    assert "beta" in reg and "delta" not in reg
    assert reg.get("alpha_large") is reg.get("alpha_large")


def test_register_returns_the_function_unchanged() -> None:
    reg = Registry("thing")

    def fn() -> int:
        return 7

    assert reg.register("seven")(fn) is fn
    assert reg.create("seven") == 7


def test_list_all_sorted_and_with_patterns() -> None:
    reg = _fresh()
    assert reg.list() == ["alpha_large", "alpha_small", "beta", "gamma"]
    assert reg.list("alpha*") == ["alpha_large", "alpha_small"]
    assert reg.list("*_small") == ["alpha_small"]
    assert reg.list("?eta") == ["beta"]
    assert reg.list("zzz*") == []


def test_duplicate_registration_warns_and_later_wins() -> None:
    reg = _fresh()
    with pytest.warns(UserWarning, match="thing 'beta' is registered twice"):

        @reg.register("beta")
        def beta2() -> str:
            return "second"

    assert reg.create("beta") == "second"
    assert reg.list().count("beta") == 1


def test_registering_the_same_function_again_is_silent() -> None:
    reg = Registry("thing")

    def fn() -> int:
        return 1

    reg.register("one")(fn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg.register("one")(fn)
    assert reg.create("one") == 1


def test_unknown_name_suggests_close_matches() -> None:
    reg = _fresh()
    with pytest.raises(UserError) as exc:
        reg.create("alpha_smal")
    msg = str(exc.value)
    assert "Unknown thing 'alpha_smal'" in msg
    assert "Did you mean" in msg and "alpha_small" in msg
    assert "\n" not in msg


def test_unknown_name_without_close_match_points_at_list() -> None:
    reg = _fresh()
    with pytest.raises(UserError, match=r"archzoo list things"):
        reg.get("zzzzzzzz")


def test_unknown_builder_kwarg_names_accepted_arguments() -> None:
    reg = _fresh()
    with pytest.raises(UserError) as exc:
        reg.create("alpha_small", widht=3)
    msg = str(exc.value)
    assert "thing 'alpha_small'" in msg
    assert "'widht'" in msg
    assert "width, depth" in msg
    assert "\n" not in msg


def test_keyword_only_arguments_are_listed_and_var_kwargs_accept_anything() -> None:
    reg = _fresh()
    with pytest.raises(UserError, match=r"it accepts: scale"):
        reg.create("beta", sclae=1.0)
    assert reg.create("gamma", anything=1, other="x") == {"anything": 1, "other": "x"}


def test_builder_without_arguments_says_none() -> None:
    reg = Registry("thing")

    @reg.register("plain")
    def plain() -> int:
        return 0

    with pytest.raises(UserError, match=r"accepts: none"):
        reg.create("plain", x=1)


def test_global_registries_hold_shipped_components() -> None:
    models = list_models()
    for name in ("mlp", "convnet", "lenet5"):
        assert name in models
    datasets = list_datasets()
    for name in ("digits", "diabetes"):
        assert name in datasets
    assert list_models("lenet*") == ["lenet5"]
    assert "digits-mlp" in list_recipes("digits-*")
    assert all(r.startswith("digits-") for r in list_recipes("digits-*"))
