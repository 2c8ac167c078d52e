"""No file archzoo reads unpickles code: a malicious pickle in each place a file is read is refused.

Each payload's ``__reduce__`` would create a marker file, once through ``os.system`` and once
through ``builtins.eval`` (which ``torch.load(weights_only=True)`` blocks by its allow-list, not by
a module block-list; PyG's own loader retries such a file without the restriction). A first test
shows that both payloads do run when unpickled plainly, so the absence of the marker afterwards
means something. Every other test plants a payload where archzoo reads a file and checks that the
load stops with one sentence (a UserError, CheckpointError or DataError) or, for caches, that the
file is ignored and rebuilt, and that the marker was never created.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from archzoo.cli import main
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.run import load_run
from archzoo.errors import CheckpointError, DataError, UserError

DATA = Path(os.environ.get("ARCHZOO_DATA", ""))
QUIET = ["log.progress=none", "log.plots=false", "log.tensorboard=false", "train.threads=1"]
HOW = ("system", "eval")


class Payload:
    """Unpickling this creates ``marker``: by ``os.system("touch ...")`` or ``eval("...touch()")``."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = str(marker), how

    def __reduce__(self) -> tuple[Any, ...]:
        if self.how == "system":
            return (os.system, (f"touch '{self.marker}'",))
        return (builtins.eval, (f"__import__('pathlib').Path({self.marker!r}).touch()",))


def evil_pickle(marker: Path, how: str, protocol: int = 2) -> bytes:
    """A plain pickle (the format of CIFAR batches, Planetoid files, a legacy ``.bin``)."""
    return pickle.dumps({"data": Payload(marker, how)}, protocol=protocol)


def evil_torch(marker: Path, how: str) -> bytes:
    """A ``torch.save`` zip whose pickle holds the payload beside a real tensor."""
    buf = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "extra": Payload(marker, how)}, buf)
    return buf.getvalue()


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    m = tmp_path / "MARKER"
    yield m
    assert not m.exists(), "a payload ran"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished digits-mlp run with checkpoints, a best file and averaged (EMA) weights."""
    run = tmp_path_factory.mktemp("run") / "digits"
    args = ["train.epochs=1", "train.ema_decay=0.9", "train.log_every=10", *QUIET]
    assert main(["train", "digits-mlp", *args, "--run-dir", str(run)]) == 0
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _one_sentence(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("archzoo: error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("how", HOW)
def test_the_payloads_run_when_unpickled_plainly(tmp_path: Path, how: str) -> None:
    m = tmp_path / "MARKER"
    pickle.loads(evil_pickle(m, how))
    assert m.exists()
    m.unlink()
    torch.load(io.BytesIO(evil_torch(m, how)), weights_only=False)
    assert m.exists()


# ----------------------------------------------------------------------------- runs and checkpoints


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_checkpoint_state_file(run: Path, marker: Path, how: str, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    last = ckpt.latest_checkpoint(run / "checkpoints")
    assert last is not None
    (last / ckpt.STATE).write_bytes(evil_torch(marker, how) if fmt == "torch" else evil_pickle(marker, how))
    with pytest.raises(CheckpointError, match="state.pt"):
        ckpt.load_checkpoint(last)
    with pytest.raises(CheckpointError, match="state.pt"):
        load_run(run, weights="last")
    assert main(["train", "--resume", str(run), *QUIET]) == 2
    _one_sentence(capsys, "state.pt")


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize(
    ("where", "weights"),
    [
        ("model.safetensors", "final"),
        ("checkpoints/best.safetensors", "best"),
        ("LAST/model.safetensors", "last"),
        ("LAST/ema.safetensors", "last"),
    ],
)
def test_weights_files_replaced_by_a_pickle(
    run: Path, marker: Path, how: str, where: str, weights: str, capsys: pytest.CaptureFixture[str]
) -> None:
    last = ckpt.latest_checkpoint(run / "checkpoints")
    assert last is not None and (last / "ema.safetensors").is_file()
    target = last / where.split("/", 1)[1] if where.startswith("LAST/") else run / where
    assert target.is_file()
    target.write_bytes(evil_torch(marker, how))
    with pytest.raises(CheckpointError, match=target.name):
        load_run(run, weights=weights)
    assert main(["eval", str(run), "--weights", weights]) == 2
    _one_sentence(capsys, target.name)
    if where.startswith("LAST/"):  # resuming reads the same files
        assert main(["train", "--resume", str(run), *QUIET]) == 2
        _one_sentence(capsys, target.name)


def test_checkpoint_pointer_cannot_leave_the_folder(run: Path) -> None:
    outside = run / "elsewhere"
    shutil.copytree(ckpt.latest_checkpoint(run / "checkpoints"), outside)  # type: ignore[arg-type]
    (run / "checkpoints" / "LAST").write_text("../elsewhere")
    with pytest.raises(CheckpointError, match="not a checkpoint in that folder"):
        load_run(run, weights="last")


def test_config_yaml_python_tags_are_refused(run: Path, marker: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = run / "config.yaml"
    cfg.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n" + cfg.read_text())
    with pytest.raises(UserError, match="not valid YAML"):
        load_run(run)
    cfg.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    assert main(["eval", str(run)]) == 2
    _one_sentence(capsys, "config.yaml")


@pytest.mark.parametrize("how", HOW)
def test_info_json_and_the_objects_it_names(run: Path, marker: Path, how: str) -> None:
    info = run / "info.json"
    saved = info.read_text()
    info.write_bytes(evil_pickle(marker, how))
    with pytest.raises(UserError, match="info.json is not readable JSON"):
        load_run(run)
    # An entry naming an archzoo attribute that is no tokenizer (torch, whose load would read the file):
    (run / "evil.json").write_bytes(evil_torch(marker, how))
    entry = {"__archzoo_saved__": "archzoo.engine.checkpoint:torch", "file": "evil.json"}
    info.write_text(json.dumps({**json.loads(saved), "tokenizer": entry}))
    with pytest.raises(UserError, match="not a tokenizer class"):
        load_run(run)
    entry = {"__archzoo_saved__": "archzoo.data.tokenizers:CharTokenizer", "file": "../evil.json"}
    info.write_text(json.dumps({**json.loads(saved), "tokenizer": entry}))
    with pytest.raises(UserError, match="must be a file in the run"):
        load_run(run)


# ----------------------------------------------------------------------------- tokenizers and pretrained weights


@pytest.mark.parametrize("how", HOW)
def test_tokenizer_files(tmp_path: Path, marker: Path, how: str) -> None:
    from archzoo.data.text import subword_tokenizer
    from archzoo.data.tokenizers import CharTokenizer, PretrainedTokenizer, Tokenizer

    f = tmp_path / "tokenizer.json"
    f.write_bytes(evil_pickle(marker, how))
    with pytest.raises(UserError, match="not a readable tokenizer file"):
        Tokenizer.load(f)
    with pytest.raises(UserError, match="tokenizers library can read"):
        PretrainedTokenizer.from_file(f)
    with pytest.raises(UserError, match="tokenizers library can read"):
        subword_tokenizer(str(tmp_path))  # a folder holding tokenizer.json
    with pytest.raises(UserError, match="not a readable tokenizer file"):
        CharTokenizer.load(f)


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.pt", "model.pth"])
@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_pretrained_weights_files(
    tmp_path: Path, marker: Path, how: str, name: str, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from archzoo.engine.pretrained import load_pretrained
    from archzoo.models.mlp import MLP

    folder = tmp_path / "hub"
    folder.mkdir()
    (folder / name).write_bytes(evil_torch(marker, how) if fmt == "torch" else evil_pickle(marker, how))
    for source in (folder, folder / name):
        with pytest.raises(CheckpointError, match=name):
            load_pretrained(MLP(64, 10, (32,)), source, quiet=True)
    code = main(["train", "digits-mlp", f"model.pretrained={folder}", "train.epochs=1", *QUIET,
                 "--run-dir", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    _one_sentence(capsys, name)


@pytest.mark.parametrize("how", HOW)
def test_gpt_and_bert_pretrained_folders(tmp_path: Path, marker: Path, how: str) -> None:
    from archzoo.models.bert import BertEncoder, load_minilm_weights
    from archzoo.models.gpt import GPT

    folder = tmp_path / "gpt2"
    folder.mkdir()
    config = {"vocab_size": 32, "n_positions": 16, "n_embd": 8, "n_layer": 1, "n_head": 2}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "pytorch_model.bin").write_bytes(evil_torch(marker, how))
    with pytest.raises(UserError, match="only pickled weights"):
        GPT.from_pretrained(folder)
    (folder / "model.safetensors").write_bytes(evil_pickle(marker, how))
    with pytest.raises(UserError, match="not a readable safetensors file"):
        GPT.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "pytorch_model.bin"}}))
    with pytest.raises(UserError, match="not .safetensors files"):
        GPT.from_pretrained(folder)
    (folder / "model.safetensors").write_bytes(evil_torch(marker, how))
    with pytest.raises(UserError, match="Cannot read BERT weights"):
        load_minilm_weights(BertEncoder(32, dim=8, depth=1, heads=2), folder)


# ----------------------------------------------------------------------------- caches and datasets


@pytest.mark.parametrize("how", HOW)
def test_molecule_feature_cache_is_ignored_and_rebuilt(
    tmp_path: Path, marker: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archzoo.data import molecules

    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    smiles = ["CCO", "c1ccccc1", "CC(=O)O"]
    digest = "ab" * 32
    path = molecules.cache_dir("molecules") / f"toy-{digest[:24]}-v{molecules.FEATURISER_VERSION}.pt"
    path.write_bytes(evil_torch(marker, how))
    with pytest.warns(UserWarning, match="not one archzoo wrote"):
        graphs, invalid, _ = molecules._featurised("toy", digest, smiles)
    assert len(graphs) == 3 and not invalid
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file is a good cache now
        again, _, _ = molecules._featurised("toy", digest, smiles)
    assert all(torch.equal(a.x, b.x) for a, b in zip(graphs, again, strict=True))


def test_entities_cache_is_ignored_and_rebuilt(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archzoo.data import entities

    raw = DATA / "entities" / "aifb" / "raw"
    if not raw.is_dir():
        pytest.skip("ARCHZOO_DATA has no entities/aifb (see ../shared/data/MANIFEST.md)")
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "cache"))
    path = entities.cache_path(raw, "aifb")
    path.write_bytes(evil_torch(marker, "eval"))
    with pytest.warns(UserWarning, match="not one archzoo wrote"):
        parsed = entities._cached(raw, "aifb")
    assert parsed["num_nodes"] > 0
    assert isinstance(torch.load(path, weights_only=True), dict)  # overwritten with the parsed graph


@pytest.mark.parametrize("how", HOW)
def test_cifar_batch_files(tmp_path: Path, marker: Path, how: str) -> None:
    from archzoo.data.cifar import read_cifar_batch

    f = tmp_path / "data_batch_1"
    f.write_bytes(evil_pickle(marker, how))
    with pytest.raises(DataError, match="refused to load global"):
        read_cifar_batch(f)


def _planetoid_copy(tmp_path: Path) -> Path:
    raw = DATA / "planetoid" / "Cora" / "raw"
    if not raw.is_dir():
        pytest.skip("ARCHZOO_DATA has no planetoid/Cora (see ../shared/data/MANIFEST.md)")
    root = tmp_path / "data"
    shutil.copytree(raw, root / "planetoid" / "Cora" / "raw")
    return root


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("part", ["x", "ally", "graph"])
def test_planetoid_raw_files_go_through_the_restricted_unpickler(
    tmp_path: Path, marker: Path, how: str, part: str
) -> None:
    """The documented exception: Planetoid's raw files are pickles, read with an allow-list of types."""
    from archzoo.registry import create_dataset

    root = _planetoid_copy(tmp_path)
    (root / "planetoid" / "Cora" / "raw" / f"ind.cora.{part}").write_bytes(evil_pickle(marker, how))
    with pytest.raises(DataError, match=f"ind.cora.{part} is not a Planetoid file archzoo reads"):
        create_dataset("cora", data_dir=root)


class _FactoryPayload:
    """A ``defaultdict`` whose factory is a callable other than ``list`` (the graph file's only allowed one)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def __reduce__(self) -> tuple[Any, ...]:
        import collections

        return (collections.defaultdict, (self.factory,))


def test_planetoid_graph_file_with_another_defaultdict_factory(tmp_path: Path, marker: Path) -> None:
    from archzoo.registry import create_dataset

    root = _planetoid_copy(tmp_path)
    for factory in (dict, tuple):  # allowed globals neither of which may be the factory
        (root / "planetoid" / "Cora" / "raw" / "ind.cora.graph").write_bytes(
            pickle.dumps(_FactoryPayload(factory), protocol=2)
        )
        with pytest.raises(DataError, match="ind.cora.graph"):
            create_dataset("cora", data_dir=root)


def test_planetoid_and_tudataset_read_no_processed_file(tmp_path: Path, marker: Path) -> None:
    """PyG would load ``processed/data.pt`` and, when the safe load fails, load it again unrestricted."""
    from archzoo.registry import create_dataset

    root = _planetoid_copy(tmp_path)
    tu = DATA / "tudataset" / "MUTAG" / "raw"
    if not tu.is_dir():
        pytest.skip("ARCHZOO_DATA has no tudataset/MUTAG")
    shutil.copytree(tu, root / "tudataset" / "MUTAG" / "raw")
    for folder in (root / "planetoid" / "Cora", root / "tudataset" / "MUTAG"):
        (folder / "processed").mkdir()
        for name in ("data.pt", "pre_transform.pt", "pre_filter.pt"):
            (folder / "processed" / name).write_bytes(evil_torch(marker, "eval"))
    assert create_dataset("cora", data_dir=root).info["num_nodes"] == 2708
    assert create_dataset("mutag", data_dir=root).info["num_graphs"] == 188


# ----------------------------------------------------------------------------- tools' files


def test_lr_finder_override_file(tmp_path: Path, marker: Path) -> None:
    from archzoo.engine.lr_finder import LRFindResult, apply_file

    f = tmp_path / "lr.yaml"
    f.write_text(f"optim: !!python/object/apply:os.system ['touch {marker}']\n")
    result = LRFindResult([1e-3], [1.0], [1.0], 1e-3, "main")
    with pytest.raises(UserError, match="not valid YAML"):
        apply_file(f, result, several=False)


@pytest.mark.parametrize("how", HOW)
def test_tune_study_journal(tmp_path: Path, marker: Path, how: str) -> None:
    pytest.importorskip("optuna")
    from archzoo.engine.tuning import tune

    study = tmp_path / "study"
    study.mkdir()
    journal = study / "study.journal"
    journal.write_bytes(evil_pickle(marker, how, protocol=4))
    with pytest.raises(UserError, match="cannot be opened"):
        tune("fashion-mlp", trials=1, out_dir=study, overrides=QUIET)
