"""archzoo viz embeddings: a 2-D picture of a node-classification run's node states; graph-level runs refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archzoo.cli import main
from archzoo.errors import UserError
from archzoo.viz.embeddings import project

QUICK = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]


@pytest.fixture(scope="module")
def karate_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "karate-gcn"
    assert main(["train", "karate-gcn", "train.epochs=2", *QUICK, "--run-dir", str(run)]) == 0
    return run


def test_pca_picture_through_the_command_line(
    karate_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emb"
    capsys.readouterr()
    assert main(["viz", "embeddings", str(karate_run), "--method", "pca", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "embeddings_pca.png")]  # the path alone, on stdout
    with Image.open(out / "embeddings_pca.png") as im:
        assert im.format == "PNG" and im.size == (720, 600)  # 6 x 5 inches at 120 dpi
        arr = np.asarray(im.convert("RGB")).astype(float)
    assert arr.std() > 10  # points were drawn, not a blank canvas


@pytest.mark.slow
def test_the_installed_command_draws_in_a_fresh_process(karate_run: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "archzoo", "viz", "embeddings", str(karate_run), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "embeddings_pca.png")]


def test_tsne_goes_to_the_run_directory_by_default(karate_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["viz", "embeddings", str(karate_run), "--method", "tsne"]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert path == karate_run / "embeddings" / "embeddings_tsne.png" and path.is_file()


def test_projections_of_hand_built_points() -> None:
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 0.1, (10, 5)), rng.normal(5, 0.1, (10, 5))]).astype(np.float32)
    for method in ("pca", "tsne"):
        xy = project(z, method)
        assert xy.shape == (20, 2)
        a, b = xy[:10].mean(0), xy[10:].mean(0)
        spread = max(xy[:10].std(0).max(), xy[10:].std(0).max())
        assert np.linalg.norm(a - b) > 3 * spread, method  # the two clusters stay apart
    # PCA's first axis is the direction of largest variance: here the line between the clusters.
    xy = project(z, "pca")
    assert abs(xy[:, 0].std()) > 10 * abs(xy[:, 1].std())
    assert project(z[:, :1], "pca").shape == (20, 2)  # one feature: padded to two
    with pytest.raises(UserError, match="pca or tsne"):
        project(z, "umap")
    with pytest.raises(UserError, match="needs at least 3"):
        project(z[:2], "pca")


def test_a_graph_level_run_is_refused_in_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "shapes"
    args = ["train", "shapes-gcn", "train.epochs=1", "data.args.n_graphs=60", *QUICK, "--run-dir", str(run)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["viz", "embeddings", str(run)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "does not classify the nodes of a graph" in err[0]
