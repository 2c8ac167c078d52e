"""``archzoo predict RUN SMILES...`` (in process, as ``main``) on a tiny trained tpsa-mpnn run: one value per SMILES, one sentence for a bad one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from archzoo.cli import main


@pytest.fixture(scope="module")
def tpsa_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    tmp = tmp_path_factory.mktemp("molecules")
    old = os.environ.get("ARCHZOO_CACHE")
    os.environ["ARCHZOO_CACHE"] = str(tmp / "cache")
    try:
        run = tmp / "tpsa-mpnn"
        args = ["train", "tpsa-mpnn", "train.epochs=1", "data.args.max_molecules=60", "model.args.hidden=16"]
        args += ["log.progress=none", "log.plots=false", "train.threads=1", "--run-dir", str(run)]
        assert main(args) == 0
    finally:
        if old is None:
            os.environ.pop("ARCHZOO_CACHE")
        else:
            os.environ["ARCHZOO_CACHE"] = old
    return run


def test_predict_prints_a_value_per_smiles(tpsa_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = json.loads((tpsa_run / "results.json").read_text())["metrics"]
    assert {"test/rmse", "test/mae", "test/r2"} <= set(results)
    capsys.readouterr()
    assert main(["predict", str(tpsa_run), "CCO", "c1ccccc1O"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["CCO", "c1ccccc1O"]
    values = [float(ln.split("\t")[1]) for ln in lines]
    assert all(math.isfinite(v) for v in values)  # numbers in TPSA's units (square angstroms)


def test_predict_names_an_unparseable_smiles(tpsa_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["predict", str(tpsa_run), "CCO", "C1CC"]) == 2
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert lines == ["archzoo: error: RDKit cannot parse the SMILES 'C1CC' (or it has no atoms)."]
    assert out.out == ""
