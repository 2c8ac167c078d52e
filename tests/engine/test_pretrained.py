"""Pretrained weights and transfer learning: loading, a new head, freezing, unfreezing, backbone lr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from archzoo.cli import main
from archzoo.config import load_config
from archzoo.data.idx import read_idx_split
from archzoo.engine import checkpoint as ckpt
from archzoo.engine.pretrained import load_pretrained
from archzoo.engine.trainer import Trainer
from archzoo.errors import CheckpointError, UserError
from archzoo.registry import create_model

FAST = [
    "log.progress=none",
    "log.plots=false",
    "log.tensorboard=false",
    "train.threads=1",
    "optim.scheduler=none",
]
# A tiny VGG-style net: three stages ("blocks.0" .. "blocks.2") and the head "classifier".
NET = ["model.name=convnet", "model.args.channels=[8,16,32]", "model.args.convs_per_block=1"]
HEAD = "classifier."
LAST_STAGE = "blocks.2."


def _folder_cfg(root: Path, *extra: str) -> list[str]:
    return [
        *FAST,
        *NET,
        "data.name=image_folder",
        f"data.args.root={root}",
        "data.args.image_size=28",
        "data.batch_size=16",
        *extra,
    ]


def _trainer(overrides: list[str], run_dir: Path, resume: bool = False) -> Trainer:
    return Trainer(load_config(None, None, overrides), run_dir=run_dir, resume=resume)


@pytest.fixture(scope="module")
def source_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A convnet trained for one epoch on 512 Fashion-MNIST images, saved as RGB PNG files."""
    base = tmp_path_factory.mktemp("fashion")
    images, labels = read_idx_split(data_root / "fashion-mnist", "train")
    for i, (img, lab) in enumerate(zip(images[:512], labels[:512], strict=True)):
        d = base / "train" / f"class{int(lab)}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).convert("RGB").save(d / f"{i}.png")
    run = base / "run"
    tr = _trainer(_folder_cfg(base, "train.epochs=1", "optim.lr=0.003"), run)
    tr.fit()
    return run


@pytest.fixture(scope="module")
def stripes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different task: 3 classes of noisy colour stripes (horizontal, vertical, diagonal) as PNG files."""
    root = tmp_path_factory.mktemp("stripes")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:28, 0:28]
    patterns = {"horizontal": yy % 6 < 3, "vertical": xx % 6 < 3, "diagonal": (xx + yy) % 6 < 3}
    for name, mask in patterns.items():
        (root / "train" / name).mkdir(parents=True)
        for i in range(16):
            colour = rng.integers(80, 256, 3)
            img = mask[..., None] * colour + rng.integers(0, 60, (28, 28, 3))
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / "train" / name / f"{i}.png")
    return root


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> set[str]:
    return {k for k in a if k.startswith(prefix) and not torch.equal(a[k], b[k])}


def test_finetune_freezes_then_unfreezes_the_last_stage(
    source_run: Path, stripes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = ckpt.load_weights_file(source_run / "model.safetensors")
    args = _folder_cfg(
        stripes, f"model.pretrained={source_run}", "model.freeze=backbone", "model.unfreeze_after=1", "optim.lr=0.01"
    )
    tr = _trainer([*args, "train.epochs=2"], tmp_path / "ft")

    # The backbone starts as the source's; the head is new, with 3 outputs.
    start = _snapshot(tr.model)
    backbone = [k for k in start if not k.startswith(HEAD)]
    assert f"pretrained: loaded {len(backbone)} tensors, new head for 3 classes" in capsys.readouterr().err
    assert backbone and all(torch.equal(start[k], src[k]) for k in backbone)
    assert tr.model.get_classifier()[-1].out_features == 3
    assert src["classifier.2.weight"].shape[0] == 10
    trainable = {n for n, p in tr.model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.2.weight", "classifier.2.bias"}

    snaps: list[dict[str, torch.Tensor]] = []
    end_epoch = tr._end_epoch

    def spy(*a: object) -> None:
        snaps.append(_snapshot(tr.model))
        end_epoch(*a)  # type: ignore[arg-type]

    tr._end_epoch = spy  # type: ignore[method-assign]
    tr.fit()
    first, second = snaps
    # Epoch 1: only the head learns; frozen batch norms keep their running statistics.
    assert _changed(start, first) == {k for k in start if k.startswith(HEAD)}
    # Epoch 2: the last stage learns too (weights and statistics), the earlier stages stay as loaded.
    moved = _changed(first, second)
    assert {k for k in moved if not k.startswith(HEAD)} == {k for k in start if k.startswith(LAST_STAGE)}
    assert all(torch.equal(second[k], src[k]) for k in backbone if not k.startswith(LAST_STAGE))

    # Resuming after epoch 1 unfreezes from the epoch alone and ends bitwise where the uninterrupted run ended.
    _trainer([*args, "train.epochs=1"], tmp_path / "split").fit()
    cfg = load_config(None, tmp_path / "split" / "config.yaml", ["train.epochs=2"])
    Trainer(cfg, run_dir=tmp_path / "split", resume=True).fit()
    whole = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "ft" / "checkpoints"))[0]  # type: ignore[arg-type]
    split = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "split" / "checkpoints"))[0]  # type: ignore[arg-type]
    assert all(torch.equal(whole[k], split[k]) for k in whole)


def test_backbone_lr_makes_head_and_backbone_groups(tmp_path: Path) -> None:
    tr = _trainer(
        ["data.name=digits", *FAST, *NET, "optim.lr=0.01", "model.backbone_lr=0.0001", "optim.weight_decay=0.05"],
        tmp_path / "run",
    )
    groups = tr.ctx.slots["main"].optimizer.param_groups
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.01, 0.05), (0.01, 0.0), (1e-4, 0.05), (1e-4, 0.0)]
    head = {id(p) for p in tr.model.get_classifier().parameters()}
    assert {id(p) for g in groups[:2] for p in g["params"]} == head
    assert not head & {id(p) for g in groups[2:] for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(tr.model.parameters()))


def test_backbone_shape_mismatch_is_one_sentence_via_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = create_model("convnet", in_channels=3, channels=[32, 64], convs_per_block=2)  # digits-cnn has 1 channel
    path = tmp_path / "rgb.safetensors"
    save_file(ckpt.state_dict_of(other), str(path))
    rc = main(["train", "digits-cnn", f"model.pretrained={path}", "train.epochs=1", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("archzoo: error: Pretrained weights")
    for needle in (str(path), "blocks.0.0.0.weight", "(32, 3, 3, 3)", "(32, 1, 3, 3)"):
        assert needle in lines[0]


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _Evil(marker)}, path)
    model = create_model("convnet", channels=[8], convs_per_block=1)
    with pytest.raises(CheckpointError, match="pickled objects other than tensors") as e:
        load_pretrained(model, path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()
    # The payload is real: the file's pickle calls builtins.exec (read with pickletools, never run).
    import pickletools
    import zipfile

    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert ("GLOBAL", "__builtin__ exec") in ops
    assert ops.index(("GLOBAL", "__builtin__ exec")) < max(i for i, (name, _) in enumerate(ops) if name == "REDUCE")


def _small() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("convnet", channels=[4, 8], convs_per_block=1, num_classes=5)


def test_torch_files_lightning_dicts_prefixes_and_hub_folders(tmp_path: Path) -> None:
    src = _small()
    sd = ckpt.state_dict_of(src)
    # DDP prefixes in a plain torch file; Lightning's {"state_dict": {"model.": ...}} with extra entries.
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ddp.pth")
    torch.save({"epoch": 3, "state_dict": {f"model._orig_mod.{k}": v for k, v in sd.items()}}, tmp_path / "pl.ckpt")
    for f in ("ddp.pth", "pl.ckpt"):
        model = create_model("convnet", channels=[4, 8], convs_per_block=1, num_classes=5)
        rep = load_pretrained(model, tmp_path / f, quiet=True)
        assert rep.loaded == len(sd) and rep.new_head == ()
        assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    # A hub cache: the one weights file anywhere below the folder; two files are ambiguous.
    hub = tmp_path / "hub" / "models--me--net" / "snapshots" / "abc"
    hub.mkdir(parents=True)
    save_file(sd, str(hub / "model.safetensors"))
    model = create_model("convnet", channels=[4, 8], convs_per_block=1, num_classes=2)
    rep = load_pretrained(model, tmp_path / "hub", quiet=True)
    assert rep.path == hub / "model.safetensors" and rep.num_classes == 2
    assert set(rep.new_head) == {"classifier.2.weight", "classifier.2.bias"}
    torch.save(sd, hub / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="several weights files .*model.safetensors.*pytorch_model.bin"):
        load_pretrained(model, tmp_path / "hub")


def test_unexpected_and_missing_keys_are_errors(tmp_path: Path) -> None:
    sd = ckpt.state_dict_of(_small())
    save_file({**sd, "blocks.9.weight": torch.zeros(3)}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CheckpointError, match=r"the file's blocks.9.weight \(shape \(3\)\) is not in the model"):
        load_pretrained(_small(), tmp_path / "extra.safetensors", quiet=True)
    save_file({k: v for k, v in sd.items() if k != "blocks.1.1.0.weight"}, str(tmp_path / "less.safetensors"))
    with pytest.raises(CheckpointError, match=r"has no blocks.1.1.0.weight \(shape \(8, 4, 3, 3\)"):
        load_pretrained(_small(), tmp_path / "less.safetensors", quiet=True)
    with pytest.raises(CheckpointError, match="do not exist"):
        load_pretrained(_small(), tmp_path / "nowhere.pt")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["model.freeze=all"], "model.freeze must be none or backbone"),
        (["model.unfreeze_after=2"], "only applies with model.freeze=backbone"),
        (["model.backbone_lr=-1"], "model.backbone_lr must be positive"),
        (["model.name=mlp", "model.freeze=backbone"], "model.freeze needs a model with a classifier head"),
    ],
)
def test_transfer_options_are_checked(tmp_path: Path, overrides: list[str], needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        _trainer(["data.name=digits", *FAST, *overrides], tmp_path / "run")
