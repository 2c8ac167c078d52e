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
SHORT_EMBEDDED = ["train.epochs=1", "train.threads=1", "log.progress=none"]
SHORT = [*SHORT_EMBEDDED, "train.max_steps=3", "data.args.limit=256"]
SHORT_TEXT = [*SHORT_EMBEDDED, "train.max_steps=3", "data.args.max_chars=20000", "data.batch_size=8"]


def short(recipe: str) -> list[str]:
    """The small overrides that fit a recipe's dataset."""
    if recipe.startswith("fashion"):
        return SHORT
    if recipe == "python-lstm":
        return SHORT_TEXT
    return SHORT_EMBEDDED


def readme_python() -> list[str]:
    """The README's Python blocks."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


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


def _in_process(args: list[str], cwd: Path, data_root: Path) -> str:
    """Run ``archzoo ARGS`` through its entry function in this process (no interpreter start-up); its stdout."""
    import contextlib
    import io

    from archzoo.cli import main

    out, here, old = io.StringIO(), Path.cwd(), os.environ.get("ARCHZOO_DATA")
    os.environ["ARCHZOO_DATA"] = str(data_root)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out):
            rc = main(args)
    finally:
        os.chdir(here)
        if old is None:
            os.environ.pop("ARCHZOO_DATA", None)
        else:
            os.environ["ARCHZOO_DATA"] = old
    assert rc == 0, f"archzoo {' '.join(args)} exited {rc}"
    return out.getvalue()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A folder with tiny runs of the recipes the README names, under runs/<recipe>/<stamp>."""
    wd = tmp_path_factory.mktemp("readme")
    for recipe in ("fashion-cnn", "fashion-ddpm", "fashion-dcgan", "python-lstm"):
        extra = ["model.args.base_channels=16", "model.args.channel_mults=[1,2]", "model.args.attention=false"]
        _in_process(
            ["train", recipe, *short(recipe), *(extra if recipe == "fashion-ddpm" else []),
             "--run-dir", f"runs/{recipe}/stamp"],
            wd, data_root,
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
        if "archzoo train" in line:  # the first run a newcomer makes, as a command
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
            _in_process(["train", "--resume", str(dst), "train.max_steps=4"], workdir, data_root)
            return
        extra = short(words[2]) if "--config" not in words else ["train.max_steps=2"]
        _in_process([*words[1:], *extra, "--run-dir", f"out-{abs(hash(line))}"], workdir, data_root)
        return
    if cmd in ("lr-find", "tune"):  # a short sweep, or a two-trial study, on a small slice of the data
        words = [*["2" if w == "20" else w for w in words], *short(words[2])]
        if cmd == "lr-find":
            words += ["--steps", "10"]
    if cmd == "score":
        words += ["--n", "64", "--batch-size", "32"]
    if cmd == "find-batch":
        words += ["--max-batch", "4"]  # two probes, not a search up to the whole split
    if cmd == "plot":
        words = [w if w != "200" else "3" for w in words]  # 3 steps per optimizer, not 200
    if cmd == "sample":
        words = [w if w not in ("50", "200") else "2" for w in words]  # 2 diffusion steps or tokens, not 50 or 200
    out = _in_process(words[1:], workdir, data_root)
    assert out.strip(), f"{line} printed nothing on stdout"


@pytest.mark.parametrize("code", readme_python())
def test_readme_python_runs(code: str, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "test/acc" in r.stdout
