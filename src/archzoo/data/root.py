"""Where dataset files live: the data root and the search for one dataset's folder.

The data root is, in order of precedence, the ``data_dir`` argument (the
command line's ``--data-dir``), the ``ARCHZOO_DATA`` environment variable, or
a per-user cache folder (``$XDG_CACHE_HOME/archzoo``, else ``~/.cache/archzoo``).
A dataset lives in a sub-folder of the root; some datasets are also found
where a system package installs them (Debian's ``dataset-fashion-mnist`` puts
Fashion-MNIST in :data:`DEBIAN_FASHION_MNIST`).

Files that archzoo derives itself (token arrays of a text corpus) go to a
writable cache, :func:`cache_dir`, never beside the data root, which may be
read-only or shared.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archzoo.errors import DataError

ENV_VAR = "ARCHZOO_DATA"
CACHE_ENV_VAR = "ARCHZOO_CACHE"

#: Where ``apt-get install dataset-fashion-mnist`` puts the four ``.gz`` idx files
#: (read from the package's file list with ``dpkg -c``).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

PathLike = str | os.PathLike[str]
# One required file, or a group of names any one of which will do (``x.gz`` or ``x``).
Required = str | Sequence[str]


def data_root(data_dir: PathLike | None = None) -> Path:
    """The folder that holds the datasets.

    Args:
        data_dir: an explicit folder; ``None`` or ``""`` falls back to
            ``$ARCHZOO_DATA``, then to ``$XDG_CACHE_HOME/archzoo`` or
            ``~/.cache/archzoo``.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "archzoo"


def cache_dir(sub: str = "") -> Path:
    """A writable folder for derived files, created if missing.

    ``$ARCHZOO_CACHE``, else ``$XDG_CACHE_HOME/archzoo``, else ``~/.cache/archzoo``;
    ``sub`` names a folder below it (``"tokens"``).
    """
    env = os.environ.get(CACHE_ENV_VAR, "")
    if env:
        base = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "archzoo"
    folder = base / sub if sub else base
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"The cache folder {folder} cannot be created ({e.strerror}); set {CACHE_ENV_VAR} to a writable folder."
        ) from None
    return folder


def read_cache_tensors(path: Path) -> Any:
    """A cache file of plain tensors and containers, or None when it cannot be read as one.

    It is read with ``torch.load(weights_only=True)``, which rebuilds tensors, numbers, strings,
    lists and dicts and refuses every other global (nothing in the file runs). A file that is
    truncated, foreign or holds anything else (a pickle planted in the cache) is reported in one
    warning and treated as absent: the caller rebuilds it from the raw data and overwrites it.
    """
    import warnings

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a file that archzoo did not write
        first = ((str(e).strip().splitlines() or [type(e).__name__])[0])[:120]
        warnings.warn(f"ignored the cache file {path}, which is not one archzoo wrote ({first}); rebuilding it",
                      stacklevel=2)  # fmt: skip
        return None


def _alternatives(item: Required) -> tuple[str, ...]:
    return (item,) if isinstance(item, str) else tuple(item)


def _missing(folder: Path, required: Sequence[Required]) -> list[str]:
    """The required items (by their first name) of which ``folder`` holds no file."""
    return [
        _alternatives(item)[0]
        for item in required
        if not any((folder / name).is_file() for name in _alternatives(item))
    ]


def _join(items: Sequence[str], last: str) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def find_dataset_dir(
    name: str,
    data_dir: PathLike | None = None,
    *,
    subdirs: Sequence[str],
    required: Sequence[Required],
    how_to_get: str = "",
    system_dirs: Sequence[PathLike] = (),
) -> Path:
    """The first folder that holds every required file of a dataset.

    The candidates are ``<root>/<subdir>`` for each of ``subdirs`` (``""`` is the
    root itself), then each of ``system_dirs``, in that order.

    Args:
        name: the dataset's name as people write it, used in the message.
        data_dir: the data root override (see :func:`data_root`).
        subdirs: folder names below the root that may hold the files.
        required: file names that must all be present; an item may be a group
            of names of which any one will do (``("x.gz", "x")``).
        how_to_get: what to run to obtain the files, a clause such as
            ``"run 'apt-get install dataset-fashion-mnist'"``.
        system_dirs: absolute folders where system packages install the files.

    Raises:
        DataError: no candidate holds all the files; one sentence names every
            folder looked in and how to get the files.
    """
    root = data_root(data_dir)
    candidates = [root / s if s else root for s in subdirs] + [Path(d) for d in system_dirs]
    partial: list[str] = []
    for folder in candidates:
        if not folder.is_dir():
            continue
        missing = _missing(folder, required)
        if not missing:
            return folder
        if len(missing) < len(required):
            partial.append(f"{folder} lacks {_join(missing, 'and')}")
    where = _join([str(c) for c in candidates], "or")
    found = f" ({'; '.join(partial)})" if partial else ""
    files = _join([_alternatives(r)[0] for r in required], "and")
    get = f"{how_to_get}, or place" if how_to_get else "place"
    raise DataError(f"{name} not found in {where}{found}; {get} {files} in {candidates[0]}.")
