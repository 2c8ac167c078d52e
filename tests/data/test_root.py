"""The data root's precedence and the search for a dataset's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.data.root import DEBIAN_FASHION_MNIST, cache_dir, data_root, find_dataset_dir
from archzoo.errors import DataError


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHZOO_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    assert data_root("") == tmp_path / "env"
    monkeypatch.delenv("ARCHZOO_DATA")
    assert data_root() == tmp_path / "xdg" / "archzoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "archzoo"


def test_data_root_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_root("~/d") == tmp_path / "d"


def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"x")


def test_find_takes_first_complete_subdir(tmp_path):
    _touch(tmp_path / "b", "x.gz", "y")
    _touch(tmp_path / "c", "x.gz", "y")
    found = find_dataset_dir("Thing", tmp_path, subdirs=["a", "b", "c"], required=[("x.gz", "x"), "y"])
    assert found == tmp_path / "b"


def test_find_accepts_any_alternative_and_root_itself(tmp_path):
    _touch(tmp_path, "x", "y")  # the uncompressed alternative, in the root itself
    assert find_dataset_dir("Thing", tmp_path, subdirs=["a", ""], required=[("x.gz", "x"), "y"]) == tmp_path


def test_find_falls_back_to_system_dirs(tmp_path):
    system = tmp_path / "usr-share"
    _touch(system, "x.gz", "y")
    found = find_dataset_dir("Thing", tmp_path / "root", subdirs=["a"], required=["x.gz", "y"], system_dirs=[system])
    assert found == system


def test_missing_dataset_is_one_sentence_naming_places_and_remedy(tmp_path):
    system = tmp_path / "sys"
    with pytest.raises(DataError) as err:
        find_dataset_dir(
            "Thing",
            tmp_path,
            subdirs=["a", "b"],
            required=[("x.gz", "x"), "y"],
            how_to_get="run 'get-thing'",
            system_dirs=[system],
        )
    msg = str(err.value)
    assert msg.startswith("Thing not found in ")
    for place in (tmp_path / "a", tmp_path / "b", system):
        assert str(place) in msg
    assert "run 'get-thing'" in msg and "x.gz and y" in msg
    assert msg.endswith(f"in {tmp_path / 'a'}.") and msg.count(". ") == 0


def test_partial_folder_names_the_missing_files(tmp_path):
    _touch(tmp_path / "a", "y")
    with pytest.raises(DataError, match=r"lacks x\.gz"):
        find_dataset_dir("Thing", tmp_path, subdirs=["a"], required=[("x.gz", "x"), "y"])


def test_debian_path_is_where_the_package_installs():
    # `dpkg -c dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb` lists
    # ./usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    assert DEBIAN_FASHION_MNIST == Path("/usr/share/datasets/fashion-mnist")


def test_cache_dir_precedence_and_creation(monkeypatch, tmp_path):
    monkeypatch.setenv("ARCHZOO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "mine"))
    assert cache_dir("tokens") == tmp_path / "mine" / "tokens" and (tmp_path / "mine" / "tokens").is_dir()
    monkeypatch.delenv("ARCHZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "archzoo"  # never the data root
    assert not (tmp_path / "data").exists()


def test_unwritable_cache_dir_is_one_sentence(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("ARCHZOO_CACHE", str(tmp_path / "file"))
    with pytest.raises(DataError, match="ARCHZOO_CACHE"):
        cache_dir("tokens")
