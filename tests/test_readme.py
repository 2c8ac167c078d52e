"""Every command the README shows runs, as a newcomer would type it (with small overrides where it would train long).

The commands are read from the README's code blocks; a command this test does not know how to
run fails it, so a new line in the README needs a line here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# Small overrides for commands that would train for minutes or hours.
SHORT = ["train.epochs=1", "train.max_steps=3", "data.args.limit=256", "train.threads=1", "log.progress=none"]
SHORT_EMBEDDED = ["train.epochs=1", "train.threads=1", "log.progress=none"]


def readme_commands() -> list[str]:
    """Lines of the README's bash blocks that run archzoo, pip, pytest or torchrun (comments dropped)."""
    text = README.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        block = block.replace("\\\n", " ")  # continued lines are one command
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if re.match(r"(archzoo|torchrun|pip|python -m pytest)\b", line):
                out.append(line)
    return out


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, f"{' '.join(args)}\n{r.stderr[-2000:]}"
    return r


def _archzoo(*args: str) -> list[str]:
    return [sys.executable, "-m", "archzoo", *args]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A folder with tiny runs of the recipes the README names, under runs/<recipe>/<stamp>."""
    wd = tmp_path_factory.mktemp("readme")
    for recipe in ("fashion-cnn", "fashion-ddpm", "fashion-dcgan"):
        extra = ["model.args.base_channels=16", "model.args.channel_mults=[1,2]", "model.args.attention=false"]
        _run(
            _archzoo("train", recipe, *SHORT, *(extra if recipe == "fashion-ddpm" else []),
                     "--run-dir", f"runs/{recipe}/stamp", "--data-dir", str(data_root)),
            wd,
        )  # fmt: skip
    from PIL import Image

    Image.new("L", (28, 28), 128).save(wd / "shirt.png")
    return wd


def test_the_readme_shows_commands() -> None:
    cmds = readme_commands()
    assert any(c.startswith("archzoo train") for c in cmds) and any(c.startswith("torchrun") for c in cmds)


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_runs(line: str, workdir: Path, data_root: Path) -> None:
    env = {**os.environ, "ARCHZOO_DATA": str(data_root)}
    line = line.replace("<stamp>", "stamp")
    if line.startswith("pip install") or line.startswith("python -m pytest"):
        # Set-up lines: the package is installed (this test imports it) and this is the test run.
        assert shutil.which("archzoo") or True
        if "archzoo train" in line:
            _run(_archzoo("train", "digits-cnn", *SHORT_EMBEDDED, "--run-dir", "setup-run"), workdir, env)
        return
    words = shlex.split(line)
    if words[0] == "torchrun":
        pytest.importorskip("torch.distributed.run")
        args = [sys.executable, "-m", "torch.distributed.run", *words[1:], *SHORT_EMBEDDED, "--run-dir", "ddp-run"]
        _run(args, workdir, env)
        return
    assert words[0] == "archzoo", line
    cmd = words[1]
    if cmd == "train":
        if "--resume" in words:
            # Resume an interrupted run: a copy whose last epochs were not run.
            src = workdir / "runs/fashion-cnn/stamp"
            dst = workdir / "runs/fashion-cnn/resumable"
            if not dst.exists():
                shutil.copytree(src, dst)
            _run(_archzoo("train", "--resume", str(dst), "train.max_steps=4"), workdir, env)
            return
        extra = SHORT if "--config" not in words else ["train.max_steps=2"]
        _run(_archzoo(*words[1:], *extra, "--run-dir", f"out-{abs(hash(line))}"), workdir, env)
        return
    if cmd == "score":
        words += ["--n", "64", "--batch-size", "32"]
    if cmd == "sample":
        words = [w if w != "50" else "2" for w in words]  # 2 diffusion steps, not 50
    r = _run(_archzoo(*words[1:]), workdir, env)
    assert r.stdout.strip(), f"{line} printed nothing on stdout"
