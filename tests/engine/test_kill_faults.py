"""SIGKILL at random moments and inside checkpoint writes, resume each time: bitwise equal, never unreadable.

The harness is benchmarks/kill_resume.py (which writes the counted 20-kill outcome to
benchmarks/results/kill_resume.json). Trainings are forks of one process that imported
archzoo once, each running the command line's ``archzoo train`` (then ``archzoo train
--resume RUN`` after every kill); the forks are the processes killed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_resume.py"
RECIPES = ["digits-mlp", "python-lstm", "karate-gcn"]


@pytest.fixture(scope="module")
def kr() -> ModuleType:
    spec = importlib.util.spec_from_file_location("archzoo_bench_kill_resume", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def forks(kr: ModuleType) -> Iterator[object]:
    server = kr.ForkServer()
    yield server
    server.close()


def _check(o: object, kills: int) -> None:
    print(
        f"\n{o.recipe}: {o.kills} kills, {o.kills_in_writes} inside checkpoint writes "
        f"({o.kills_by_hook} by the hook: {'; '.join(o.hook_kills)}; {o.random_kills_in_write} random), "
        f"{o.resumes} resumes, {o.restarts} restarts, {o.unreadable} unreadable, bitwise equal {o.bitwise_equal}"
    )
    assert o.kills == kills, f"{o.kills} kills of {kills} happened (the run finished first)"
    assert o.kills_by_hook >= 1 and o.kills_in_writes >= 1
    assert o.unreadable == 0
    assert o.resumes >= 1
    assert o.bitwise_equal, "the resumed run's model.safetensors differs from the uninterrupted one"
    assert o.metrics_rows_equal, "the resumed run's metrics.csv rows differ from the uninterrupted one"
    if o.recipe.endswith("lstm"):
        assert o.carried_state, "the LM's checkpoints hold no carried hidden state"


@pytest.mark.parametrize("recipe", RECIPES)
def test_three_kills_resume_bitwise(recipe: str, kr: ModuleType, forks: object, tmp_path: Path) -> None:
    _check(kr.kill_resume(recipe, 3, 0, tmp_path, forks), 3)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_twenty_kills_resume_bitwise(recipe: str, kr: ModuleType, forks: object, tmp_path: Path) -> None:
    _check(kr.kill_resume(recipe, 20, 1, tmp_path, forks), 20)


def test_a_kill_between_an_epoch_row_and_its_checkpoint_logs_the_row_once(
    kr: ModuleType, forks: object, tmp_path: Path
) -> None:
    """The last epoch ends at step 42, where a step checkpoint was just written; its row is logged, then the
    end-of-epoch checkpoint (same step) is torn. The resume must drop that row before logging it again."""
    argv = ["train", *kr.RECIPES["digits-mlp"], *kr.COMMON]
    env = {"ARCHZOO_FAULT": ""}
    forks.start([*argv, "--run-dir", str(tmp_path / "ref")], tmp_path / "o", tmp_path / "e0", env)
    assert forks.wait() == 0
    # 21 steps an epoch, a checkpoint every 2: write 69 is the weights of the checkpoint at the last epoch's end.
    forks.start(
        [*argv, "--run-dir", str(tmp_path / "v")],
        tmp_path / "o",
        tmp_path / "e1",
        {"ARCHZOO_FAULT": "kill-at-write:69"},
    )
    assert forks.wait() == -9
    assert ".epoch0002-step0000042.tmp" in (tmp_path / "e1").read_text()
    assert (tmp_path / "v" / "checkpoints" / "LAST").read_text() == "epoch0001-step0000042"
    forks.start(["train", "--resume", str(tmp_path / "v")], tmp_path / "o", tmp_path / "e2", env)
    assert forks.wait() == 0, (tmp_path / "e2").read_text()
    assert kr._rows(tmp_path / "v") == kr._rows(tmp_path / "ref")
    assert kr._same_weights(tmp_path / "ref" / "model.safetensors", tmp_path / "v" / "model.safetensors")
