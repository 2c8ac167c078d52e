"""Tests for archzoo.engine.checkpoint: atomic writes, round trips, pruning, corrupt and unsafe files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from archzoo.engine.checkpoint import (
    POINTER,
    STATE,
    WEIGHTS,
    atomic_write_bytes,
    latest_checkpoint,
    load_checkpoint,
    load_into,
    load_weights_file,
    save_checkpoint,
    save_weights,
    state_dict_of,
    unwrap,
)
from archzoo.errors import CheckpointError


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def _trained_state(model: nn.Module) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
    return {
        "epoch": 3,
        "elapsed": 1.25,
        "best": None,
        "name": "run",
        "tensor": torch.arange(6).reshape(2, 3),
        "nested": {"a": {"b": [1, 2.5, torch.ones(2)]}, "t": (1, 2)},
        "optimizers": {"main": opt.state_dict()},
    }


def _assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b and type(a) is type(b)


def test_round_trip_weights_and_state(tmp_path: Path) -> None:
    model = _model()
    state = _trained_state(model)
    path = save_checkpoint(tmp_path, "epoch0001", model, state)
    assert path == tmp_path / "epoch0001"
    assert (path / WEIGHTS).is_file() and (path / STATE).is_file()

    weights, back = load_checkpoint(path)
    ref = model.state_dict()
    assert weights.keys() == ref.keys()
    for k in ref:
        assert torch.equal(weights[k], ref[k])
    _assert_same(state, back)

    other = _model(seed=1)
    load_into(other, weights, path)
    for k, v in other.state_dict().items():
        assert torch.equal(v, ref[k])
    # the optimizer state loads into a fresh optimizer
    opt = torch.optim.AdamW(other.parameters(), lr=1e-2)
    opt.load_state_dict(back["optimizers"]["main"])
    assert opt.state_dict()["state"][0]["step"] == 1


def test_state_file_loads_with_weights_only(tmp_path: Path) -> None:
    model = _model()
    path = save_checkpoint(tmp_path, "t", model, _trained_state(model))
    state = torch.load(path / STATE, weights_only=True)
    assert state["epoch"] == 3


def test_last_points_at_the_newest_and_older_are_pruned(tmp_path: Path) -> None:
    model = _model()
    assert latest_checkpoint(tmp_path) is None
    for i in range(3):
        save_checkpoint(tmp_path, f"epoch{i:04d}", model, {"epoch": i})
        assert (tmp_path / POINTER).read_text() == f"epoch{i:04d}"
        assert latest_checkpoint(tmp_path) == tmp_path / f"epoch{i:04d}"
    dirs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert dirs == ["epoch0002"]
    assert load_checkpoint(latest_checkpoint(tmp_path))[1] == {"epoch": 2}


def test_keep_two_keeps_the_previous_one(tmp_path: Path) -> None:
    model = _model()
    for i in range(4):
        save_checkpoint(tmp_path, f"e{i}", model, {"epoch": i}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["e2", "e3"]
    assert latest_checkpoint(tmp_path) == tmp_path / "e3"


def test_saving_the_same_tag_again_replaces_it(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "t", _model(0), {"epoch": 0})
    m1 = _model(1)
    save_checkpoint(tmp_path, "t", m1, {"epoch": 1})
    weights, state = load_checkpoint(tmp_path / "t")
    assert state == {"epoch": 1}
    assert torch.equal(weights["0.weight"], m1[0].weight)


def test_leftover_temporary_directory_is_ignored(tmp_path: Path) -> None:
    model = _model()
    save_checkpoint(tmp_path, "epoch0001", model, {"epoch": 1})
    # A kill in the middle of writing epoch0002 leaves a half-written temporary directory.
    tmp = tmp_path / ".epoch0002.tmp12345"
    tmp.mkdir()
    (tmp / WEIGHTS).write_bytes(b"\x00" * 10)
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch0001"
    assert load_checkpoint(latest_checkpoint(tmp_path))[1] == {"epoch": 1}
    # the next save still works and moves LAST
    save_checkpoint(tmp_path, "epoch0003", model, {"epoch": 3})
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch0003"
    assert not (tmp_path / "epoch0001").exists()


def test_pointer_to_a_missing_directory(tmp_path: Path) -> None:
    (tmp_path / POINTER).write_text("gone")
    assert latest_checkpoint(tmp_path) is None


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"hello")
    atomic_write_bytes(target, b"world!")
    assert target.read_bytes() == b"world!"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]
    save_checkpoint(tmp_path / "ck", "a", _model(), {"x": 1})
    names = {p.name for p in (tmp_path / "ck").rglob("*")}
    assert names == {"a", POINTER, WEIGHTS, STATE}


def test_truncated_weights_name_the_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, "t", _model(), {"epoch": 1})
    f = path / WEIGHTS
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert str(f) in msg and "truncated or corrupt" in msg and "\n" not in msg


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_weights_file(tmp_path / "none.safetensors")


@pytest.mark.parametrize("mode", ["truncate", "garbage", "empty"])
def test_bad_state_file(tmp_path: Path, mode: str) -> None:
    model = _model()
    path = save_checkpoint(tmp_path, "t", model, _trained_state(model))
    f = path / STATE
    if mode == "truncate":
        with open(f, "r+b") as fh:
            fh.truncate(f.stat().st_size // 2)
    elif mode == "garbage":
        f.write_bytes(os.urandom(64))
    else:
        f.write_bytes(b"")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert str(f) in msg and "\n" not in msg


def test_missing_state_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, "t", _model(), {"epoch": 1})
    (path / STATE).unlink()
    with pytest.raises(CheckpointError, match="has no state.pt"):
        load_checkpoint(path)


def test_state_that_is_not_a_dict(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, "t", _model(), {"epoch": 1})
    torch.save([1, 2, 3], path / STATE)
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_checkpoint(path)


class _Evil:
    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = marker, how

    def __reduce__(self):  # type: ignore[no-untyped-def]
        if self.how == "system":
            return (os.system, (f"touch '{self.marker}'",))
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("how", ["system", "open"])
@pytest.mark.parametrize("fmt", ["torch", "raw_pickle"])
def test_state_file_cannot_execute_code(tmp_path: Path, how: str, fmt: str) -> None:
    path = save_checkpoint(tmp_path / "ck", "t", _model(), {"epoch": 1})
    marker = tmp_path / "pwned"
    evil = {"epoch": 1, "payload": _Evil(marker, how)}
    if fmt == "torch":
        torch.save(evil, path / STATE)
    else:
        (path / STATE).write_bytes(pickle.dumps(evil))
    assert not marker.exists()
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert not marker.exists()
    assert str(path / STATE) in str(exc.value)


def test_load_into_mismatched_model_is_one_line(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, "t", _model(), {"epoch": 1})
    weights, _ = load_checkpoint(path)
    wrong = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with pytest.raises(CheckpointError) as exc:
        load_into(wrong, weights, path)
    msg = str(exc.value)
    assert "does not match the model" in msg and str(path) in msg and "\n" not in msg
    fewer = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(CheckpointError) as exc:
        load_into(fewer, weights, path)
    assert "\n" not in str(exc.value)


def test_save_weights_unwraps_and_copies(tmp_path: Path) -> None:
    class Wrapper(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    inner = _model()
    tied = nn.Linear(2, 2, bias=False)
    inner.add_module("tied", tied)
    inner.add_module("tied2", tied)  # shared storage: safetensors refuses it unless copied
    wrapped = Wrapper(inner)
    assert unwrap(wrapped) is inner
    sd = state_dict_of(wrapped)
    assert set(sd) == set(inner.state_dict())
    assert sd["tied.weight"].data_ptr() != sd["tied2.weight"].data_ptr()
    f = tmp_path / "best.safetensors"
    save_weights(wrapped, f, {"epoch": "3"})
    back = load_weights_file(f)
    for k, v in inner.state_dict().items():
        assert torch.equal(back[k], v)
    from safetensors import safe_open

    with safe_open(str(f), "pt") as fh:
        assert fh.metadata() == {"epoch": "3"}
