"""Kill a training with SIGKILL at random moments, resume it each time, and count what happened.

For each recipe (an image MLP, a token-stream LSTM that carries its hidden state across
batches, a full-graph GCN) an uninterrupted reference run is trained first. Then a victim
with the same command is killed N times and resumed with ``archzoo train --resume RUN``
after each kill, until it finishes. A share of the kills is placed inside a checkpoint
write by the ``ARCHZOO_FAULT`` test hook (``kill-at-write:K`` tears the K-th write in half
and dies, ``kill-at-fsync:K`` dies before the K-th fsync; see archzoo.engine.faults); the
others come from outside after a seeded random delay, and those that happen to catch a
write in progress (a temporary file left behind) are counted too.

After every kill the checkpoint ``LAST`` names is loaded with
``checkpoint.load_checkpoint``; at the end the victim's ``model.safetensors`` is compared
with the reference's bit for bit.

Processes come from a fork server by default: one Python process imports archzoo, torch and
torchmetrics once (seconds) and forks a child for each training, which runs the same
``archzoo.cli.main`` as the command line; the children are the processes killed. With
``--spawn`` every training is a fresh ``python -m archzoo`` instead (the same outcome, slower).

Usage: ``python benchmarks/kill_resume.py [--kills 20] [--seed 0] [--spawn] [--label L] [RECIPE ...]``;
writes ``benchmarks/results/kill_resume.json`` (``kill_resume-L.json`` with a label). tests/engine/test_kill_faults.py runs the
same harness with 3 kills per recipe (20 under ``-m slow``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from archzoo.engine import checkpoint as ckpt
from archzoo.engine.faults import MARK
from archzoo.engine.loggers import read_metrics

# Tiny trainings: every step (or epoch, for the one-step-an-epoch graph) writes a checkpoint,
# so there is always a write to land in; dropout and augmentation draw from the RNGs resume restores.
COMMON = ["train.threads=1", "log.progress=none", "log.plots=false", "log.tensorboard=false"]
RECIPES: dict[str, list[str]] = {
    "digits-mlp": [
        "digits-mlp", "train.epochs=2", "data.batch_size=64", "train.checkpoint_every=2", "train.log_every=5",
        "model.args.dropout=0.2", "data.augment.crop_padding=1",
    ],
    # Truncated BPTT over 8 parallel streams of the Python reference text: the hidden state is carried
    # from batch to batch, and it is part of the checkpoint (the task's extra state).
    "python-lstm": [
        "python-lstm", "train.max_steps=40", "data.batch_size=8", "data.eval_batch_size=64",
        "data.args.block_size=32", "model.args.embed_dim=16", "model.args.hidden_size=32",
        "model.args.dropout=0.1", "train.checkpoint_every=2", "train.log_every=5",
    ],
    # One full-graph step per epoch, validation at every epoch (best.safetensors changes often).
    "karate-gcn": ["karate-gcn", "train.epochs=40", "train.log_every=5"],
}  # fmt: skip
# Optimizer steps between checkpoints in each: a hook's K stays within the writes left to make.
EVERY = {"digits-mlp": 2, "python-lstm": 2, "karate-gcn": 1}

SERVER = r"""
import json, os, resource, sys, traceback
import torch
torch.set_num_threads(1)
import torchmetrics  # noqa: F401  the slow import, done once before any fork
import archzoo.engine.trainer  # noqa: F401
try:
    import networkx, torch_geometric  # noqa: F401, E401  the graph recipes' imports, also done once
except ImportError:
    pass
from archzoo.cli import main
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            for fd, path in ((1, req["out"]), (2, req["err"])):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(f, fd)
                os.close(f)
            os.environ.update(req["env"])
            if req.get("fsize"):
                resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
            rc = main(req["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
"""


class ForkServer:
    """Starts trainings as forks of one process that has imported everything (see the module docstring)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self._read()  # ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fork server died")
        return json.loads(line)

    def start(self, argv: list[str], out: Path, err: Path, env: dict[str, str], fsize: int = 0) -> int:
        assert self.proc.stdin is not None
        req = {"argv": argv, "out": str(out), "err": str(err), "env": env, "fsize": fsize}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return int(self._read()["pid"])

    def wait(self) -> int:
        return int(self._read()["rc"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Spawner:
    """Starts every training as a fresh ``python -m archzoo`` process."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, argv: list[str], out: Path, err: Path, env: dict[str, str], fsize: int = 0) -> int:
        def limit() -> None:
            if fsize:
                import resource

                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        with open(out, "ab") as o, open(err, "ab") as e:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "archzoo", *argv], stdout=o, stderr=e, env={**self.env, **env},
                preexec_fn=limit,
            )  # fmt: skip
        return self.proc.pid

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait()

    def close(self) -> None:
        pass


def launcher(spawn: bool = False) -> ForkServer | Spawner:
    return Spawner() if spawn else ForkServer()


# ----------------------------------------------------------------------------- one recipe


@dataclass
class Outcome:
    recipe: str
    kills: int = 0
    kills_by_hook: int = 0  # placed inside a checkpoint write by ARCHZOO_FAULT (the hook's line was seen)
    random_kills_in_write: int = 0  # outside kills that left a temporary file behind
    resumes: int = 0
    restarts: int = 0  # kills before the first checkpoint: the run starts again
    hook_missed: int = 0  # hook kills that did not fire: the run finished first
    unreadable: int = 0  # LAST named a checkpoint load_checkpoint refused, or vanished once written
    carried_state: bool | None = None  # the checkpoints hold a carried hidden state (the LM)
    bitwise_equal: bool = False
    metrics_rows_equal: bool = False
    reference_seconds: float = 0.0
    seconds: float = 0.0
    hook_kills: list[str] = field(default_factory=list)

    @property
    def kills_in_writes(self) -> int:
        return self.kills_by_hook + self.random_kills_in_write


def _mid_write(run: Path) -> set[str]:
    """Traces of a checkpoint write in progress: temporary files of checkpoints, ``LAST``, ``best`` and
    ``model.safetensors``, and a checkpoint directory renamed into place that ``LAST`` does not name yet."""
    ck = run / "checkpoints"
    found = {f"run/{p.name}" for p in run.glob(".model.safetensors.tmp*")}
    if ck.is_dir():
        found |= {p.name for p in ck.iterdir() if p.name.startswith(".") and ".tmp" in p.name}
        last = _last_step(run)
        for p in ck.iterdir():
            if p.is_dir() and not p.name.startswith(".") and int(p.name.rsplit("step", 1)[-1] or 0) > last:
                found.add(f"unnamed {p.name}")
    return found


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _wait_started(run: Path, before: int, pid: int, timeout: float = 120.0) -> None:
    """Until the child's fit() has (re)written config.yaml (its mtime is no longer ``before``), or it is gone."""
    deadline = time.time() + timeout
    while time.time() < deadline and _mtime(run / "config.yaml") == before:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.005)


def _last_step(run: Path) -> int:
    """The step in the tag ``LAST`` names (``epochE-stepS``), 0 without one."""
    try:
        return int((run / "checkpoints" / "LAST").read_text().rsplit("step", 1)[1])
    except (OSError, ValueError, IndexError):
        return 0


def _check_last(run: Path) -> tuple[bool, dict[str, Any] | None]:
    """(LAST exists, the loop state of the checkpoint it names); a refused checkpoint raises."""
    last = ckpt.latest_checkpoint(run / "checkpoints")
    if last is None:
        return (run / "checkpoints" / "LAST").exists(), None
    _, state = ckpt.load_checkpoint(last)
    return True, state


def _same_weights(a: Path, b: Path) -> bool:
    if not (a.is_file() and b.is_file()):
        return False
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _rows(run: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run / "metrics.csv")]


def kill_resume(
    recipe: str,
    kills: int,
    seed: int,
    workdir: Path,
    runner: ForkServer | Spawner,
    hook_share: float = 0.4,
    min_hook: int = 1,
    args: list[str] | None = None,
) -> Outcome:
    """Train ``recipe`` once uninterrupted and once killed ``kills`` times; return the counts."""
    argv = ["train", *(args or RECIPES[recipe]), *COMMON]
    rng = random.Random(f"{recipe}:{seed}")
    out = Outcome(recipe)
    ref, victim = workdir / f"{recipe}-ref", workdir / f"{recipe}-victim"
    logs = workdir / f"{recipe}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    base_env = {"ARCHZOO_FAULT": ""}

    t0 = time.perf_counter()
    pid = runner.start([*argv, "--run-dir", str(ref)], logs / "ref.out", logs / "ref.err", base_env)
    _wait_started(ref, 0, pid)
    started = time.perf_counter()
    rc = runner.wait()
    out.reference_seconds = round(time.perf_counter() - t0, 2)
    if rc != 0:
        raise RuntimeError(f"the reference run of {recipe} failed ({rc}): {(logs / 'ref.err').read_text()[-2000:]}")
    fit_seconds = max(time.perf_counter() - started, 0.2)
    total_steps = json.loads((ref / "results.json").read_text())["steps_run"]

    # Which kills the hook places (at least min_hook of them), in a seeded order.
    n_hook = min(kills, max(min_hook, round(hook_share * kills)))
    plan = [True] * n_hook + [False] * (kills - n_hook)
    rng.shuffle(plan)

    t0 = time.perf_counter()
    ever_written = False
    attempt = 0
    while True:
        attempt += 1
        has_ckpt = (victim / "checkpoints" / "LAST").exists()
        cmd = ["train", "--resume", str(victim)] if has_ckpt else [*argv, "--run-dir", str(victim)]
        if has_ckpt:
            out.resumes += 1
        elif attempt > 1:
            out.restarts += 1
        env = dict(base_env)
        hook = out.kills < kills and plan[out.kills]
        if hook:
            # Each checkpoint left makes 3 writes (weights, state, LAST) and 5 fsyncs; the final weights one more.
            room = 3 * ((total_steps - _last_step(victim)) // EVERY.get(recipe, 1)) + 1
            kind = rng.choice(["write", "fsync"])
            env["ARCHZOO_FAULT"] = f"kill-at-{kind}:{rng.randint(1, max(1, min(10, room)))}"
        err = logs / f"victim{attempt:02d}.err"
        before = _mtime(victim / "config.yaml")
        traces = _mid_write(victim)  # left by an earlier kill: not this one's
        pid = runner.start(cmd, logs / f"victim{attempt:02d}.out", err, env)
        killed_here = False
        if out.kills < kills and not hook:
            _wait_started(victim, before, pid)
            # A seeded random delay, which shrinks with the work left so the kills spread over the whole
            # run; and, lest a run faster than the reference finish first, a random step (read from the
            # tag LAST names) at which the kill comes at once if the delay has not run out by then.
            done = _last_step(victim)
            left = max(1, total_steps - done)
            share = 2 / (kills - out.kills + 1)
            delay = rng.uniform(0.0, fit_seconds * left / total_steps * share)
            cap = min(done + rng.randint(1, max(1, int(left * share))), max(done + 1, total_steps - 4))
            end = time.perf_counter() + delay
            while time.perf_counter() < end and _last_step(victim) < cap:
                time.sleep(0.002)
            try:
                os.kill(pid, signal.SIGKILL)
                killed_here = True
            except ProcessLookupError:
                pass
        rc = runner.wait()
        if rc == -signal.SIGKILL:
            text = err.read_text(errors="replace")
            marked = [line for line in text.splitlines() if line.startswith(MARK)]
            if hook and marked:
                out.kills_by_hook += 1
                out.hook_kills.append(marked[-1][len(MARK) :].strip())
            elif killed_here and _mid_write(victim) - traces:
                out.random_kills_in_write += 1
            out.kills += 1
            try:
                exists, state = _check_last(victim)
                ever_written = ever_written or exists
                if ever_written and not exists:
                    out.unreadable += 1  # a pointer that was written has vanished
                if state is not None and out.carried_state is None and recipe.endswith("lstm"):
                    out.carried_state = bool(state.get("task", {}).get("train_state"))
            except Exception:  # noqa: BLE001 - any refusal counts
                out.unreadable += 1
            continue
        if rc != 0:
            raise RuntimeError(f"{recipe}: attempt {attempt} failed ({rc}): {err.read_text()[-2000:]}")
        if hook:
            out.hook_missed += 1
        if killed_here:
            pass  # the kill came after the run had finished (SIGKILL to a gone pid raised nothing: rc 0)
        break
    out.seconds = round(time.perf_counter() - t0, 2)
    out.bitwise_equal = _same_weights(ref / "model.safetensors", victim / "model.safetensors")
    try:
        out.metrics_rows_equal = _rows(ref) == _rows(victim)
    except Exception:  # noqa: BLE001 - a torn metrics file compares unequal
        out.metrics_rows_equal = False
    return out


def summary_of(outcomes: list[Outcome]) -> dict[str, Any]:
    kills = sum(o.kills for o in outcomes)
    in_writes = sum(o.kills_in_writes for o in outcomes)
    return {
        "kills": kills,
        "kills_in_writes": in_writes,
        "resumes": sum(o.resumes for o in outcomes),
        "unreadable_checkpoints": sum(o.unreadable for o in outcomes),
        "all_bitwise_equal": all(o.bitwise_equal for o in outcomes),
        "all_metrics_rows_equal": all(o.metrics_rows_equal for o in outcomes),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spawn", action="store_true", help="a fresh python -m archzoo per training, not forks")
    p.add_argument("--label", default="", help="write kill_resume-LABEL.json (another setting of the same benchmark)")
    a = p.parse_args(argv)
    unknown = [r for r in a.recipes if r not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe {unknown[0]!r}; this benchmark runs {', '.join(RECIPES)}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import write_result

    torch.set_num_threads(1)  # what the trainings use (train.threads=1), and what the result records
    runner = launcher(a.spawn)
    outcomes = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in a.recipes:
                o = kill_resume(r, a.kills, a.seed, Path(tmp), runner)
                print(json.dumps({**o.__dict__, "kills_in_writes": o.kills_in_writes}), flush=True)
                outcomes.append(o)
    finally:
        runner.close()
    s = summary_of(outcomes)
    per = "; ".join(
        f"{o.recipe} {o.kills} kills ({o.kills_in_writes} in writes), {o.resumes} resumes, "
        f"{'bitwise equal' if o.bitwise_equal else 'NOT equal'}"
        for o in outcomes
    )
    write_result(
        f"kill_resume-{a.label}" if a.label else "kill_resume",
        {
            "value": s["unreadable_checkpoints"],
            "unit": "unreadable checkpoints after SIGKILL",
            "target": 0,
            "meets_target": s["unreadable_checkpoints"] == 0
            and s["all_bitwise_equal"]
            and s["all_metrics_rows_equal"]
            and s["kills_in_writes"] > 0,
            "anchor": None,
            "anchor_source": None,
            "summary": (
                f"SIGKILL at {a.kills} random moments per recipe, resumed each time: {s['kills']} kills, "
                f"{s['kills_in_writes']} inside checkpoint writes, {s['resumes']} resumes, "
                f"{s['unreadable_checkpoints']} unreadable checkpoints; final weights equal to the uninterrupted "
                f"run bit for bit: {'all' if s['all_bitwise_equal'] else 'NOT all'}, metrics.csv rows: "
                f"{'all equal' if s['all_metrics_rows_equal'] else 'NOT all equal'} ({per}); "
                f"{'fresh processes' if a.spawn else 'forked processes'}, seed {a.seed}"
            ),
            **s,
            "kills_per_recipe": a.kills,
            "seed": a.seed,
            "launcher": "spawn" if a.spawn else "fork",
            "recipes": [{**o.__dict__, "kills_in_writes": o.kills_in_writes} for o in outcomes],
        },
    )
    return 0 if s["unreadable_checkpoints"] == 0 and s["all_bitwise_equal"] and s["all_metrics_rows_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
