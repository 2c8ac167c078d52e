"""A full disk while writing a checkpoint: the last good one stays, LAST names it, one sentence, resume finishes.

The end-to-end test trains under a real file-size limit (``RLIMIT_FSIZE``, set in the
training process; Python ignores SIGXFSZ, so the write past it fails with EFBIG). The
in-process tests write into /dev/full, where the kernel answers ENOSPC.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from archzoo.engine import checkpoint as ckpt

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "kill_resume.py"
ARGS = [
    "train", "digits-mlp", "train.epochs=2", "data.batch_size=64", "train.checkpoint_every=2",
    "model.args.dropout=0.2", "train.threads=1", "log.progress=none", "log.plots=false", "log.tensorboard=false",
]  # fmt: skip
LIMIT = 100_000  # bytes: metrics.csv and config.yaml fit, the 204 kB weights of a checkpoint do not


@pytest.fixture(scope="module")
def forks() -> Iterator[object]:
    spec = importlib.util.spec_from_file_location("archzoo_bench_kill_resume_disk", BENCH)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    server = module.ForkServer()
    yield server
    server.close()


def _train(forks: object, argv: list[str], logs: Path, name: str, env: dict[str, str] | None = None, fsize: int = 0):
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    forks.start(argv, out, err, {"ARCHZOO_FAULT": "", **(env or {})}, fsize)
    return forks.wait(), err.read_text()


def test_full_disk_keeps_the_last_checkpoint_and_resume_finishes(forks: object, tmp_path: Path) -> None:
    ref, run = tmp_path / "ref", tmp_path / "run"
    logs = tmp_path / "logs"
    logs.mkdir()
    rc, err = _train(forks, [*ARGS, "--run-dir", str(ref)], logs, "ref")
    assert rc == 0, err
    # Two checkpoints (3 writes each: weights, state, LAST), then die tearing the third's weights.
    rc, _ = _train(forks, [*ARGS, "--run-dir", str(run)], logs, "part1", {"ARCHZOO_FAULT": "kill-at-write:7"})
    assert rc == -9
    ck = run / "checkpoints"
    before = (ck / "LAST").read_text()
    assert before == "epoch0000-step0000004"
    # Resume with the disk "full" for any file past 100 kB: the next checkpoint cannot be written.
    rc, err = _train(forks, ["train", "--resume", str(run)], logs, "full", fsize=LIMIT)
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("archzoo: error:")]
    assert len(errors) == 1 and len(err.strip().splitlines()) == 1, err
    good = ck / before
    assert errors[0] == (
        f"archzoo: error: Could not write checkpoint epoch0000-step0000006 to {ck}: the file would pass the "
        f"file-size limit (EFBIG); the last good checkpoint {good} is intact and "
        f"`archzoo train --resume {run}` continues from it."
    )
    assert (ck / "LAST").read_text() == before
    weights, state = ckpt.load_checkpoint(good)
    assert state["global_step"] == 4 and weights
    left = sorted(p.name for p in ck.iterdir())
    assert left == ["LAST", before], f"temporary or partial files left behind: {left}"
    assert not (run / "model.safetensors").exists()
    # Space again: the resume finishes and ends where the uninterrupted run did, bit for bit.
    rc, err = _train(forks, ["train", "--resume", str(run)], logs, "resume")
    assert rc == 0, err
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(run / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_full_disk_before_any_checkpoint_says_so(forks: object, tmp_path: Path) -> None:
    run = tmp_path / "run"
    logs = tmp_path / "logs"
    logs.mkdir()
    rc, err = _train(forks, [*ARGS, "--run-dir", str(run)], logs, "full", fsize=LIMIT)
    assert rc == 2 and "Traceback" not in err, err
    assert err.strip().endswith("no checkpoint was written before it; free some space and start the run again.")
    assert not (run / "checkpoints" / "LAST").exists()
    assert [p.name for p in (run / "checkpoints").iterdir()] == []


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))


def test_enospc_on_the_pointer_keeps_last_on_the_previous_checkpoint(tmp_path: Path) -> None:
    ck = tmp_path / "run" / "checkpoints"
    model = _model()
    first = ckpt.save_checkpoint(ck, "epoch0000-step0000001", model, {"step": 1})
    # The pointer's temporary file is /dev/full: writing LAST fails with the kernel's ENOSPC.
    (ck / f".{ckpt.POINTER}.tmp{os.getpid()}").symlink_to("/dev/full")
    with pytest.raises(ckpt.DiskFullError) as e:
        ckpt.save_checkpoint(ck, "epoch0000-step0000002", model, {"step": 2})
    assert str(e.value) == (
        f"Could not write checkpoint epoch0000-step0000002 to {ck}: no space left on device (ENOSPC); the last "
        f"good checkpoint {first} is intact and `archzoo train --resume {ck.parent}` continues from it."
    )
    assert ckpt.latest_checkpoint(ck) == first
    assert sorted(p.name for p in ck.iterdir()) == ["LAST", first.name]  # no temp, no unnamed checkpoint
    assert ckpt.load_checkpoint(first)[1] == {"step": 1}
    assert Path("/dev/full").exists()  # the symlink went, not its target


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.ENOSPC, "no space left on device (ENOSPC)"),
        (errno.EFBIG, "the file would pass the file-size limit (EFBIG)"),
        (errno.EDQUOT, "the disk quota is exceeded (EDQUOT)"),
    ],
)
def test_every_disk_full_errno_gets_the_sentence(code: int, reason: str, tmp_path: Path) -> None:
    with pytest.raises(ckpt.DiskFullError) as e:
        with ckpt.disk_full_guard("results.json", tmp_path, tmp_path / "checkpoints"):
            raise OSError(code, os.strerror(code))
    assert str(e.value) == (
        f"Could not write results.json to {tmp_path}: {reason}; no checkpoint was written before it; "
        "free some space and start the run again."
    )
    with pytest.raises(PermissionError):  # another OSError is not a full disk
        with ckpt.disk_full_guard("results.json", tmp_path, tmp_path / "checkpoints"):
            raise PermissionError(errno.EACCES, "denied")


def test_enospc_on_the_final_weights_names_them(tmp_path: Path) -> None:
    from archzoo.config import load_config
    from archzoo.engine.trainer import Trainer

    cfg = load_config("karate-gcn", None, ["train.epochs=3", "log.progress=none", "log.plots=false",
                                           "log.tensorboard=false", "train.threads=1"])  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    (run / f".model.safetensors.tmp{os.getpid()}").symlink_to("/dev/full")
    with pytest.raises(ckpt.DiskFullError) as e:
        Trainer(cfg, run_dir=run).fit()
    last = run / "checkpoints" / "epoch0003-step0000003"
    assert str(e.value) == (
        f"Could not write the final weights model.safetensors to {run}: no space left on device (ENOSPC); the last "
        f"good checkpoint {last} is intact and `archzoo train --resume {run}` continues from it."
    )
    assert ckpt.load_checkpoint(last)[1]["epoch"] == 3
    assert not (run / "model.safetensors").exists()
    # With space again, the resume loads the final checkpoint, evaluates and writes the weights and results.
    assert not (run / f".model.safetensors.tmp{os.getpid()}").is_symlink()  # the failed write's temporary went
    results = Trainer(cfg, run_dir=run, resume=True).fit()
    assert "test/acc" in results and (run / "results.json").is_file()
    assert ckpt.load_weights_file(run / "model.safetensors").keys() == ckpt.load_checkpoint(last)[0].keys()


TMPFS_SCRIPT = r"""
set -u
mount -t tmpfs -o size=1000k tmpfs "$1" || exit 97
cd "$2"
"$3" -m archzoo train {args} --run-dir "$1/run" > /dev/null 2> "$4/full.err"; echo "full_rc=$?"
echo "last=$(cat "$1/run/checkpoints/LAST")"
echo "entries=$(ls -A "$1/run/checkpoints" | tr '\n' ' ')"
"$3" -c "from archzoo.engine import checkpoint as c; w, s = c.load_checkpoint(c.latest_checkpoint('$1/run/checkpoints')); print('loaded_step=%d' % s['global_step'])"
mount -o remount,size=20m "$1"
"$3" -m archzoo train --resume "$1/run" > /dev/null 2> "$4/resume.err"; echo "resume_rc=$?"
cp "$1/run/model.safetensors" "$4/model.safetensors"
umount "$1"
"""


@pytest.mark.slow
def test_a_real_full_tmpfs_ends_in_one_sentence_and_resumes(forks: object, tmp_path: Path) -> None:
    """ENOSPC from a 1000 kB tmpfs, mounted in a private mount namespace (needs root; skipped elsewhere)."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting a tmpfs needs root and unshare(1)")
    args = ARGS[1:]
    logs = tmp_path / "logs"
    logs.mkdir()
    rc, err = _train(forks, ["train", *args, "--run-dir", str(tmp_path / "ref")], logs, "ref")
    assert rc == 0, err
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = TMPFS_SCRIPT.replace("{args}", " ".join(args))
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", script, "-", str(mnt), str(root),
         sys.executable, str(logs)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode == 97 or "unshare failed" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[:200]}")
    got = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    err = (logs / "full.err").read_text()
    print(f"\n{err.strip()}")
    assert got["full_rc"] == "2" and "Traceback" not in err, err
    assert "no space left on device (ENOSPC); the last good checkpoint" in err and len(err.strip().splitlines()) == 1
    assert got["entries"].split() == ["LAST", got["last"]]  # no temp files, no partial checkpoint
    assert int(got["loaded_step"]) >= 2
    assert got["resume_rc"] == "0", (logs / "resume.err").read_text()
    a, b = load_file(str(tmp_path / "ref" / "model.safetensors")), load_file(str(logs / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
