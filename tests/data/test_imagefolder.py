"""Image folders decoded once into memory, their augmentation, and load_image."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from archzoo.data.imagefolder import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    channel_stats,
    decode_image,
    folder_augment,
    image_folder,
    load_image,
)
from archzoo.data.splits import epoch_generator
from archzoo.errors import DataError, UserError
from archzoo.registry import create_dataset

COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "fox": (30, 30, 200)}


def save(path: Path, colour=(128, 128, 128), size=(24, 16), mode="RGB") -> Path:
    """A real image file: a solid colour with a little noise, in the format the suffix says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    arr = np.clip(np.array(colour)[None, None] + rng.integers(-10, 11, (size[1], size[0], 3)), 0, 255)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return path


def make_split(folder: Path, per_class: int = 3, exts=(".png", ".jpg")) -> None:
    for c, colour in COLOURS.items():
        for i in range(per_class):
            save(folder / c / f"{c}{i}{exts[i % len(exts)]}", colour, size=(20 + 4 * i, 16 + 2 * i))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "pets"
    make_split(root / "train", 4)
    make_split(root / "val", 1)
    make_split(root / "test", 2)
    return root


def test_train_val_test_folders(tree):
    b = image_folder(root=str(tree), image_size=16, normalize="unit")
    assert (len(b.train), len(b.val), len(b.test)) == (12, 3, 6)
    x, y = b.train.tensors
    assert x.shape == (12, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert b.info["classes"] == ["cat", "dog", "fox"] and b.info["num_classes"] == 3
    assert b.info["in_channels"] == 3 and b.info["image_size"] == 16 and b.info["kind"] == "image"
    assert b.info["normalize"] == "unit" and b.info["mean"] == [0.0] * 3
    # the label is the folder: each image's dominant channel is its class's colour
    assert torch.equal(x.mean(dim=(2, 3)).argmax(1), y)
    assert torch.equal(b.test.tensors[0].mean(dim=(2, 3)).argmax(1), b.test.tensors[1])


def test_holdout_without_val_and_flat_layout(tmp_path):
    make_split(tmp_path / "a" / "train", 10)
    b = image_folder(root=str(tmp_path / "a"), image_size=8, val_fraction=0.2, seed=0)
    assert (len(b.train), len(b.val)) == (24, 6) and b.test is None
    make_split(tmp_path / "flat", 2)
    b = image_folder(root=str(tmp_path / "flat"), image_size=8, val_fraction=0.5)
    assert len(b.train) + len(b.val) == 6 and b.info["classes"] == ["cat", "dog", "fox"]


def test_root_relative_to_data_dir_and_data_dir_alone(tmp_path):
    make_split(tmp_path / "data" / "pets" / "train", 2)
    b = create_dataset("image_folder", data_dir=str(tmp_path / "data"), root="pets", image_size=8)
    assert b.info["source"] == str(tmp_path / "data" / "pets")
    assert image_folder(data_dir=tmp_path / "data" / "pets", image_size=8).info["source"] == str(
        tmp_path / "data" / "pets"
    )


def test_resize_shorter_side_then_centre_crop(tmp_path):
    for size, name in (((60, 20), "wide.png"), ((20, 60), "tall.png")):
        arr = np.zeros((size[1], size[0], 3), np.uint8)
        arr[..., 2] = 255  # blue margins
        if size[0] > size[1]:
            arr[:, 30 - 12 : 30 + 12] = (255, 0, 0)  # a red band a little wider than the centre square
        else:
            arr[30 - 12 : 30 + 12, :] = (255, 0, 0)
        Image.fromarray(arr).save(tmp_path / name)
        out = decode_image(tmp_path / name, 10)
        assert out.shape == (10, 10, 3)
        assert (out[..., 0] == 255).all() and (out[..., 2] == 0).all()
    out = decode_image(tmp_path / "wide.png", (10, 30))  # (H, W): the whole image, scaled
    assert out.shape == (10, 30, 3) and out[:, 0, 2].min() == 255


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".PNG"])
def test_formats(tmp_path, ext):
    save(tmp_path / f"a{ext}", (200, 30, 30), size=(40, 30))
    out = decode_image(tmp_path / f"a{ext}", 16)
    assert out.shape == (16, 16, 3) and out.mean(axis=(0, 1)).argmax() == 0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_modes_become_rgb(tmp_path, mode):
    p = save(tmp_path / ("a.jpg" if mode == "CMYK" else "a.png"), (90, 90, 90), mode=mode)
    assert decode_image(p, 8).shape == (8, 8, 3)


def test_non_images_and_hidden_files_are_ignored(tree):
    (tree / "train" / "cat" / "notes.txt").write_text("hello")
    (tree / "train" / "cat" / ".DS_Store").write_bytes(b"\x00\x01")
    (tree / "train" / "cat" / "._cat0.png").write_bytes(b"\x00\x01")  # macOS resource fork
    (tree / "train" / ".cache").mkdir()
    assert len(image_folder(root=str(tree), image_size=8).train) == 12


def test_unreadable_image_names_the_file(tree):
    bad = tree / "train" / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="Cannot read image") as err:
        image_folder(root=str(tree), image_size=8)
    assert str(bad) in str(err.value)
    good = tree / "train" / "cat" / "cat0.png"
    good.write_bytes(good.read_bytes()[:60])  # truncated PNG
    with pytest.raises(DataError):
        image_folder(root=str(tree), image_size=8)


def test_skip_bad_warns_once_with_the_count(tree):
    (tree / "train" / "dog" / "broken.jpg").write_bytes(b"garbage")
    (tree / "test" / "fox" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.warns(UserWarning) as record:
        b = image_folder(root=str(tree), image_size=8, skip_bad=True)
    msgs = [str(w.message) for w in record]
    assert len(msgs) == 1 and msgs[0].startswith("Skipped 2 unreadable image file(s)")
    assert (len(b.train), len(b.test)) == (12, 6)
    assert torch.equal(b.train.tensors[0].mean(dim=(2, 3)).argmax(1), b.train.tensors[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (tree / "train" / "dog" / "broken.jpg").unlink()
        (tree / "test" / "fox" / "broken.png").unlink()
        image_folder(root=str(tree), image_size=8, skip_bad=True)  # nothing skipped, no warning


def test_empty_class_folder_names_it(tree):
    (tree / "train" / "emu").mkdir()
    with pytest.raises(DataError, match="holds no images") as err:
        image_folder(root=str(tree), image_size=8)
    assert str(tree / "train" / "emu") in str(err.value)


def test_val_class_unknown_to_train(tree):
    save(tree / "val" / "emu" / "e.png")
    with pytest.raises(DataError, match="is not one of the training classes") as err:
        image_folder(root=str(tree), image_size=8)
    assert str(tree / "val" / "emu") in str(err.value)


def test_missing_root_and_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        image_folder(root=str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(err.value)
    with pytest.raises(DataError, match="holds no class folders"):
        image_folder(root=str(tmp_path))
    with pytest.raises(UserError, match="needs root="):
        image_folder()
    make_split(tmp_path / "t" / "train", 1)
    for kwargs in ({"image_size": 0}, {"normalize": "zscore"}, {"val_fraction": 1.5}):
        with pytest.raises(UserError):
            image_folder(root=str(tmp_path / "t"), **kwargs)


def test_normalisation_modes(tree):
    unit = image_folder(root=str(tree), image_size=8, normalize="unit")
    u = unit.train.tensors[0]
    std = image_folder(root=str(tree), image_size=8)
    mean_c = u.mean(dim=(0, 2, 3))
    std_c = u.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    torch.testing.assert_close(torch.tensor(std.info["mean"], dtype=torch.float32), mean_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(std.info["std"], dtype=torch.float32), std_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(std.train.tensors[0], (u - mean_c.view(1, 3, 1, 1)) / std_c.view(1, 3, 1, 1))
    imnet = image_folder(root=str(tree), image_size=8, normalize="imagenet")
    assert imnet.info["mean"] == list(IMAGENET_MEAN) and imnet.info["std"] == list(IMAGENET_STD)
    sym = image_folder(root=str(tree), image_size=8, normalize="symmetric").train.tensors[0]
    torch.testing.assert_close(sym, u * 2 - 1)


def test_channel_stats_exact():
    x = torch.randint(0, 256, (5, 3, 7, 9), dtype=torch.uint8)
    mean, std = channel_stats(x)
    f = x.double() / 255
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), f.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(
        torch.tensor(std, dtype=torch.float64), f.transpose(0, 1).reshape(3, -1).std(dim=1, unbiased=False)
    )


def test_augmentation_per_sample_deterministic_and_isolated(tree):
    spec = {"resized_crop": [0.3, 1.0], "rotation": 20, "color_jitter": 0.4, "flip": True, "cutout": 4}
    b = image_folder(root=str(tree), image_size=16, augment=spec)
    assert b.val.augment is None and b.test.augment is None
    x = b.train.tensors[0][:1].expand(8, -1, -1, -1).clone()  # eight copies of one image
    state = torch.get_rng_state()
    out = b.train.augment(x, epoch_generator(0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # global RNG untouched
    assert out.shape == x.shape and out.dtype == torch.float32
    assert len({tuple(o.flatten()[:64].tolist()) for o in out}) == 8  # each copy got its own draw
    again = b.train.augment(x, epoch_generator(0, 0, 1))
    assert torch.equal(out, again)  # a pure function of the generator
    other = b.train.augment(x, epoch_generator(0, 0, 2))
    assert not torch.equal(out, other)
    m = torch.tensor(b.info["mean"]).view(1, 3, 1, 1)
    s = torch.tensor(b.info["std"]).view(1, 3, 1, 1)
    u = out * s + m
    assert u.min() >= -1e-5 and u.max() <= 1 + 1e-5  # still valid images in [0, 1]


def test_augment_keys(tree):
    assert folder_augment(None, [0.5] * 3, [0.5] * 3, 8) is None
    assert folder_augment({"flip": True}, [0.5] * 3, [0.5] * 3, 8) is not None
    with pytest.raises(UserError, match="Unknown augmentation blur"):
        image_folder(root=str(tree), image_size=8, augment={"blur": 3})
    for spec in ({"resized_crop": 0.5}, {"rotation": [-5, 5]}, {"color_jitter": [0.2, 0.2, 0.2, 0.05]}):
        aug = folder_augment(spec, [0.5] * 3, [0.5] * 3, 8)
        assert aug(torch.zeros(2, 3, 8, 8), epoch_generator(0, 0, 0)).shape == (2, 3, 8, 8)
    for bad in ({"resized_crop": [0.5]}, {"color_jitter": [0.1, 0.2]}, {"rotation": "a lot"}):
        with pytest.raises(UserError, match="Bad augmentation setting"):
            folder_augment(bad, [0.5] * 3, [0.5] * 3, 8)


def test_augment_speed_is_reported(tree):
    spec = {"resized_crop": True, "rotation": 15, "color_jitter": 0.4, "flip": True}
    aug = folder_augment(spec, [0.5] * 3, [0.25] * 3, 64)
    x = torch.randn(64, 3, 64, 64).clamp(-2, 2)
    t0 = time.perf_counter()
    aug(x, epoch_generator(0, 0, 1))
    per_image = (time.perf_counter() - t0) / 64
    print(f"per-sample v2 augmentation: {per_image * 1e3:.2f} ms per 64×64 image")


def test_load_image(tmp_path):
    p = save(tmp_path / "photo.jpg", (200, 100, 50), size=(48, 32))
    x = load_image(p, 16, IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    raw = torch.from_numpy(decode_image(p, 16)).permute(2, 0, 1)[None].float() / 255
    m, s = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (raw - m) / s)
    g = load_image(p, 28, [0.2860], [0.3530], in_channels=1)  # a Fashion-MNIST model's input
    assert g.shape == (1, 1, 28, 28)
    gray = torch.from_numpy(decode_image(p, 28, "L")).float()[None, None] / 255
    torch.testing.assert_close(g, (gray - 0.2860) / 0.3530)
    assert load_image(p, 8, 0.5, 0.5).shape == (1, 3, 8, 8)
    with pytest.raises(UserError):
        load_image(p, 8, [0.5, 0.5], [0.5, 0.5])
    with pytest.raises(UserError):
        load_image(p, 8, 0.5, 0.5, in_channels=2)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(DataError, match="Cannot read image") as err:
        load_image(bad, 8, 0.5, 0.5)
    assert str(bad) in str(err.value)
