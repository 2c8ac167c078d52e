"""The resume policy: which settings a resumed run may change.

``archzoo train --resume RUN key=value`` continues the training its checkpoint
began. Settings that decide where the run writes, how long it goes on, on what
it runs and how it reports may change; everything else would be overwritten by
the checkpoint's state without a word, or make a run that no single training
produces, and is refused in one sentence. Every config field is classified here
(``tests/engine/test_resume_policy.py`` walks them all), so a new field cannot
slip through unclassified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archzoo.config import Config
from archzoo.errors import UserError

# Settings a resumed run may change: they decide where the run writes, how long it goes on, on
# what it runs and how it reports, not the training the checkpoint has begun.
RESUME_FREE = (
    "description",
    "data.dir",
    "data.eval_batch_size",
    "data.on_device",
    "train.device",
    "train.threads",
    "train.epochs",
    "train.max_steps",
    "train.max_time",
    "train.early_stopping",
    "train.min_delta",
    "train.log_every",
    "train.eval_every",
    "train.eval_epoch_end",
    "train.checkpoint_every",
    "train.ema_decay",
    "train.log_grad_norm",
    "train.log_histograms",
    "train.skip_nonfinite",  # resuming a diverged run with it on skips the bad steps from the last good checkpoint
    "log.",
    "tune.",  # read by archzoo tune only, never by the training
)
# Settings the checkpoint has begun with: changing them is refused.
RESUME_REFUSED = (
    "recipe",
    "data.name",
    "data.batch_size",
    "data.val_fraction",
    "data.augment",
    "data.args",
    "model.",
    "task.",
    "optim.",
    "train.seed",
    "train.deterministic",
    "train.precision",
    "train.grad_accum",
    "train.grad_clip",
    "train.monitor",
    "train.mode",
)


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == f or (f.endswith(".") and key.startswith(f)) for f in patterns)


def classify(key: str) -> str:
    """``free`` or ``refused`` for a flattened config key (``optim.lr``); raises for an unclassified one."""
    free, refused = _matches(key, RESUME_FREE), _matches(key, RESUME_REFUSED)
    if free == refused:
        raise KeyError(f"config key {key} is {'in both resume lists' if free else 'not classified for resume'}")
    return "free" if free else "refused"


# Schedules whose shape is fixed by the run's total step count when they are built.
LENGTH_SHAPED_SCHEDULES = ("cosine", "onecycle", "warmup_cosine")


def flat_config(d: dict[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` as ``{"optim.lr": 1}``: one level deep, so ``model.args`` is one value."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update({f"{k}.{sub}": x for sub, x in v.items()})
        else:
            out[k] = v
    return out


def resume_changes(saved: Config, new: Config, run: str | Path = "RUN") -> list[str]:
    """Check the settings a resumed run changes against the ones its checkpoint was written with.

    Returns the changes allowed, as ``key old → new`` (``log.*`` left out). Raises one UserError
    naming every change the checkpoint does not allow: the model, task, optimizer and schedule,
    the data and its batching, the seed, and (under a schedule shaped by the run's length)
    ``train.epochs``. Those would be overwritten by the checkpoint's state without a word, or
    make a run that no single training produces.
    """
    a, b = flat_config(saved.to_dict()), flat_config(new.to_dict())
    changed = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    allowed, refused = [], []
    for k in changed:
        what = f"{k} {a.get(k)!r} → {b.get(k)!r}"
        free = classify(k) == "free"
        if k == "train.epochs" and saved.optim.scheduler in LENGTH_SHAPED_SCHEDULES:
            free = False
            what += f" (the {saved.optim.scheduler} schedule's length is fixed in the checkpoint)"
        if not free:
            refused.append(what)
        elif not k.startswith("log."):
            allowed.append(what)
    if refused:
        raise UserError(
            "A resumed run continues the training its checkpoint began, so these settings cannot change: "
            + "; ".join(refused)
            + ". To train with them, start a new run from its weights: "
            f"archzoo train --config {run}/config.yaml model.pretrained={run} key=value ..."
        )
    return allowed
