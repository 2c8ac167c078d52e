"""Every generic data option acts on every split kind, or is refused by it in one sentence."""

from __future__ import annotations

import pytest

from archzoo.config import load_config
from archzoo.engine.builders import build_data
from archzoo.errors import UserError

# One dataset of each split kind, at its smallest.
KINDS = {
    "TensorSplit": ("digits", []),
    "TokenStream": ("python_chars", ["data.args.max_chars=20000"]),
    "PaddedSequences": ("parity_sequences", ["data.args.n=200"]),
    "GraphBatches": ("graph_shapes", ["data.args.n_graphs=60"]),
    "FullGraph": ("karate", []),
    "SeriesWindows": ("noisy_sine", []),
}
# What each kind does with each option: True acts, False refuses.
ACTS = {
    "batch_size": {"TensorSplit", "TokenStream", "PaddedSequences", "GraphBatches", "SeriesWindows"},
    "eval_batch_size": {"TensorSplit", "TokenStream", "PaddedSequences", "GraphBatches", "SeriesWindows"},
    "val_fraction": {"TensorSplit", "TokenStream", "PaddedSequences", "GraphBatches", "SeriesWindows"},
    "augment": {"TensorSplit"},
    "on_device": set(KINDS),
}
VALUES = {
    "batch_size": ("data.batch_size=4", "data.batch_size=8"),
    "eval_batch_size": ("data.eval_batch_size=4", "data.eval_batch_size=8"),
    "val_fraction": ("data.val_fraction=0.2", "data.val_fraction=0.3"),
    "augment": ("data.augment.crop_padding=1", "data.augment.crop_padding=2"),
    "on_device": ("data.on_device=false", "data.on_device=false"),
}


def _bundle(kind: str, *overrides: str):
    name, extra = KINDS[kind]
    cfg = load_config(None, None, [f"data.name={name}", *extra, *overrides])
    return cfg, build_data(cfg)


@pytest.mark.parametrize("option", list(ACTS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_option_acts_or_is_refused(kind: str, option: str) -> None:
    first, second = VALUES[option]
    if kind not in ACTS[option]:
        with pytest.raises(UserError) as e:
            _bundle(kind, first)
        msg = str(e.value)
        assert option in msg and msg.count(". ") == 0 and msg.endswith("."), msg
        return
    cfg_a, a = _bundle(kind, first)
    cfg_b, b = _bundle(kind, second)
    assert type(a.train).__name__ == kind
    if option == "batch_size":
        assert a.train.num_batches(cfg_a.data.train_batch) > b.train.num_batches(cfg_b.data.train_batch)
    elif option == "eval_batch_size":
        n_a = sum(1 for _ in a.val.batches(cfg_a.data.eval_batch))
        n_b = sum(1 for _ in b.val.batches(cfg_b.data.eval_batch))
        assert n_a > n_b
    elif option == "val_fraction":
        assert len(a.val) < len(b.val)
    elif option == "augment":
        assert a.train.augment is not None
    elif option == "on_device":
        assert cfg_a.data.on_device is False  # kept on the host: nothing is moved to the device
