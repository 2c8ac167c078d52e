"""The resume policy: what a resumed run may change, and every config field classified."""

from __future__ import annotations

import dataclasses

import pytest

from archzoo.config import Config, load_config
from archzoo.engine.resume import classify, flat_config, resume_changes
from archzoo.errors import UserError


def test_every_config_field_is_classified_for_resume() -> None:
    """A new field must be put in RESUME_FREE or RESUME_REFUSED (exactly one), or this fails."""
    keys = flat_config(Config().to_dict())
    for group in ("data", "model", "task", "optim", "train", "log"):
        cls = type(getattr(Config(), group))
        for f in dataclasses.fields(cls):
            key = f"{group}.{f.name}"
            assert key in keys
            assert classify(key) in ("free", "refused"), key
    for top in ("recipe", "description"):
        assert classify(top) in ("free", "refused")
    with pytest.raises(KeyError, match="not classified"):
        classify("train.brand_new_field")


def test_resume_allows_settings_outside_the_training_it_began() -> None:
    saved = load_config("digits-mlp", None, ["optim.scheduler=step"])
    new = load_config(
        "digits-mlp",
        None,
        ["optim.scheduler=step", "train.epochs=30", "train.threads=3", "train.ema_decay=0.99", "log.progress=none"],
    )
    changes = resume_changes(saved, new)
    assert changes == [
        "train.ema_decay 0.0 → 0.99",
        f"train.epochs {saved.train.epochs} → 30",
        "train.threads 0 → 3",
    ]  # log.* is not reported
    assert resume_changes(saved, saved) == []


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "warmup_cosine"])
def test_resume_refuses_a_new_length_under_a_length_shaped_schedule(schedule: str) -> None:
    saved = load_config("digits-mlp", None, [f"optim.scheduler={schedule}", "train.epochs=2"])
    new = load_config("digits-mlp", None, [f"optim.scheduler={schedule}", "train.epochs=3"])
    with pytest.raises(UserError, match=rf"train.epochs 2 → 3 \(the {schedule} schedule's length is fixed"):
        resume_changes(saved, new, "runs/x")
    # Under a schedule that does not know the run's length, more epochs are fine.
    saved = load_config("digits-mlp", None, ["optim.scheduler=step", "train.epochs=2"])
    assert resume_changes(saved, load_config("digits-mlp", None, ["optim.scheduler=step", "train.epochs=3"]))


@pytest.mark.parametrize(
    "override",
    [
        "optim.lr=0.5",
        "data.batch_size=7",
        "model.args.dropout=0.3",
        "task.args.label_smoothing=0.2",
        "train.seed=3",
        "train.grad_accum=2",
        "data.augment.flip=true",
        "optim.scheduler=cosine",
    ],
)
def test_resume_refuses_what_the_checkpoint_fixes(override: str) -> None:
    saved = load_config("digits-mlp", None, ["optim.scheduler=step"])
    new = load_config("digits-mlp", None, ["optim.scheduler=step", override])
    key = override.split("=")[0].split(".")
    with pytest.raises(UserError) as err:
        resume_changes(saved, new, "runs/x")
    msg = str(err.value)
    assert ".".join(key[:2]) in msg and "model.pretrained=runs/x" in msg
    assert msg.count("\n") == 0
