"""Tests for archzoo.config: recipes, typed dotted overrides, one-line errors, YAML round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.config import Config, load_config, recipe_names
from archzoo.errors import UserError


def _error(*overrides: str, recipe: str | None = "digits-mlp") -> str:
    with pytest.raises(UserError) as exc:
        load_config(recipe, overrides=list(overrides))
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_recipes_are_shipped() -> None:
    names = recipe_names()
    assert {"digits-mlp", "digits-cnn", "diabetes-mlp"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_loads(name: str) -> None:
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    assert cfg.recipe == name
    assert cfg.description
    # Recipes are named <dataset>-<model>; the dataset part is a prefix of data.name or its short form.
    assert cfg.data.train_batch >= 1 and cfg.optim.for_slot("main").lr > 0 and cfg.train.epochs >= 1


def test_recipe_values_are_read() -> None:
    cfg = load_config("digits-cnn")
    assert cfg.data.name == "digits"
    assert cfg.model.name == "convnet"
    assert cfg.model.args == {"channels": [32, 64], "convs_per_block": 2, "dropout": 0.2}
    assert cfg.data.augment == {}
    assert (cfg.train.monitor, cfg.train.mode) == ("val/loss", "min")
    assert cfg.optim.scheduler == "onecycle"
    assert cfg.task.args == {"label_smoothing": 0.05}
    # unspecified keys keep their defaults
    assert cfg.train.grad_accum == 1 and cfg.optim.betas is None  # None: the task's default, else (0.9, 0.999)
    assert cfg.optim.for_slot("main").betas == [0.9, 0.999]


def test_no_recipe_gives_defaults() -> None:
    assert load_config() == Config()


def test_dotted_overrides_are_typed() -> None:
    cfg = load_config(
        "digits-mlp",
        overrides=["optim.lr=3e-3", "train.epochs=5", "model.args.hidden=[8,4]", "data.augment.flip=true"],
    )
    assert isinstance(cfg.optim.lr, float) and cfg.optim.lr == pytest.approx(0.003)
    assert isinstance(cfg.train.epochs, int) and not isinstance(cfg.train.epochs, bool) and cfg.train.epochs == 5
    assert cfg.model.args["hidden"] == [8, 4]
    assert cfg.model.args["dropout"] == 0.1  # the rest of the free dict is kept
    assert cfg.data.augment == {"flip": True}


def test_more_override_coercions() -> None:
    cfg = load_config(
        "digits-mlp",
        overrides=[
            "optim.lr=1",
            "train.epochs=2.0",
            "optim.betas=[0.5, 0.99]",
            "train.monitor=val/acc",
            "data.dir=null",
        ],
    )
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 2 and isinstance(cfg.train.epochs, int)
    assert cfg.optim.betas == [0.5, 0.99]
    assert cfg.train.monitor == "val/acc"
    assert cfg.data.dir is None


def test_override_value_with_equals_sign_keeps_the_rest() -> None:
    cfg = load_config("digits-mlp", overrides=["description=a=b"])
    assert cfg.description == "a=b"


def test_override_creates_missing_free_dict_key() -> None:
    cfg = load_config("diabetes-mlp", overrides=["task.args.foo=1"])
    assert cfg.task.args == {"foo": 1}


def test_unknown_key_is_named() -> None:
    msg = _error("optim.lrr=1")
    assert "'optim.lrr'" in msg
    assert "lr" in msg  # lists what the group has


def test_unknown_top_level_key() -> None:
    assert "'optimizer'" in _error("optimizer.lr=1")


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.epochs=abc", "train.epochs must be an integer"),
        ("train.epochs=1.5", "train.epochs must be an integer"),
        ("train.deterministic=3", "train.deterministic must be true or false"),
        ("optim.lr=abc", "optim.lr must be a number"),
        ("optim.betas=0.9", "optim.betas must be a list"),
        ("model.args=5", "model.args must be a mapping"),
    ],
)
def test_wrong_types(override: str, fragment: str) -> None:
    assert fragment in _error(override)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.precision=fp8", "train.precision must be one of"),
        ("optim.name=lion", "optim.name must be one of"),
        ("optim.lr=-1", "optim.lr must be positive"),
        ("data.batch_size=0", "data.batch_size must be at least 1"),
        ("optim.scheduler=linear", "optim.scheduler must be one of"),
        ("data.val_fraction=1.0", "data.val_fraction"),
        ("optim.betas=[0.9]", "optim.betas needs two numbers"),
        ("train.device=tpu", "train.device must be"),
        ("model.init=zeros", "model.init must be one of"),
    ],
)
def test_invalid_values(override: str, fragment: str) -> None:
    msg = _error(override)
    assert fragment in msg
    bad = override.split("=", 1)[1]
    assert bad in msg or str(float(bad)) in msg


def test_override_without_equals() -> None:
    msg = _error("optim.lr")
    assert "'optim.lr'" in msg and "key.sub=value" in msg


def test_override_with_empty_key() -> None:
    assert "empty key" in _error("=3")


def test_override_into_a_scalar_is_rejected() -> None:
    assert "'lr' is not a group" in _error("optim.lr.x=1")


def test_unknown_recipe_hints() -> None:
    msg = _error(recipe="digit-mlp")
    assert "Unknown recipe 'digit-mlp'" in msg
    assert "Did you mean" in msg and "digits-mlp" in msg


def test_unknown_recipe_without_close_match() -> None:
    assert "archzoo list recipes" in _error(recipe="qqqqqqqqqqqq")


def test_invalid_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("optim: {lr: [1, 2\n")
    with pytest.raises(UserError) as exc:
        load_config(None, p)
    msg = str(exc.value)
    assert str(p) in msg and "not valid YAML" in msg and "\n" not in msg


def test_yaml_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must hold a mapping") as exc:
        load_config(None, p)
    assert "\n" not in str(exc.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_config(None, tmp_path / "nope.yaml")


def test_group_that_is_not_a_mapping(tmp_path: Path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text("optim: 3\n")
    with pytest.raises(UserError, match="optim must be a mapping"):
        load_config(None, p)


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    p = tmp_path / "empty.yaml"
    p.write_text("")
    assert load_config(None, p) == Config()


@pytest.mark.parametrize("name", ["digits-cnn", "diabetes-mlp"])
def test_save_and_load_round_trip(tmp_path: Path, name: str) -> None:
    cfg = load_config(name, overrides=["optim.lr=2e-3", "train.monitor=val/loss", "data.augment.cutout=2"])
    path = tmp_path / "config.yaml"
    cfg.save(path)
    back = load_config(None, path)
    assert back == cfg
    assert back.to_yaml() == cfg.to_yaml()


def test_config_file_merges_over_recipe(tmp_path: Path) -> None:
    base = load_config("digits-cnn")
    p = tmp_path / "over.yaml"
    p.write_text("optim:\n  lr: 0.01\nmodel:\n  args: {dropout: 0.5}\ntrain:\n  epochs: 3\n")
    cfg = load_config("digits-cnn", p)
    assert cfg.optim.lr == 0.01 and cfg.train.epochs == 3
    assert cfg.model.args == {**base.model.args, "dropout": 0.5}
    # everything else is untouched
    assert cfg.optim.scheduler == base.optim.scheduler and cfg.optim.weight_decay == base.optim.weight_decay
    assert cfg.train.log_every == base.train.log_every
    assert cfg.data == base.data and cfg.task == base.task and cfg.log == base.log
    assert cfg.recipe == "digits-cnn"


def test_overrides_apply_after_config_file(tmp_path: Path) -> None:
    p = tmp_path / "over.yaml"
    p.write_text("train: {epochs: 3}\n")
    cfg = load_config("digits-mlp", p, ["train.epochs=7"])
    assert cfg.train.epochs == 7


# ----------------------------------------------------------------------------- resuming
