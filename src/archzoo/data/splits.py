"""Splits: how a dataset's batches are drawn, sharded across ranks and resumed mid-epoch.

The engine, viz and scoring depend on the :class:`Split` protocol alone. Each
kind of data has its own implementation, and each keeps three promises:

* **order is a pure function of** ``(seed, epoch)``, so a run resumed at batch
  ``start`` sees the same batches as one that never stopped;
* **it shards itself** for distributed data parallel: given ``rank`` and
  ``world`` it yields this rank's part of the global batch (or, for one full
  graph, the same graph on every rank);
* **it names the generic data options it honours** in a class attribute
  ``options`` (a subset of ``batch_size``, ``eval_batch_size``, ``augment`` and
  ``on_device``); the engine refuses the others with one sentence.

The kinds:

* :class:`TensorSplit`: small in-memory datasets (digits, Fashion-MNIST, CIFAR-10)
  held as one tensor per field, already in the model's layout; batches are
  tuples of tensors.
* :class:`TokenStream`: a 1-D token corpus, usually a memory-mapped ``.bin``
  file (:func:`write_tokens`, :meth:`TokenStream.from_file`), cut into
  ``(x, y)`` next-token windows, either at random starts (GPT pre-training) or
  as parallel contiguous streams (truncated BPTT for recurrent models).

:class:`TensorSplit` draws a batch with one ``index_select``; augmentation runs
on the whole batch at once (:mod:`archzoo.data.augment`). There is no
per-sample Python and no worker process. The permutation of epoch ``e`` comes
from a generator seeded with ``seed`` and ``e``, and the augmentation of batch
``i`` from one seeded with ``(seed, e, i)``. Under DDP every rank draws the same
global batch and keeps its own slice ``batch[rank::world]``, so the global batch
is the same as in one process. :class:`TokenStream` shards rows (or whole streams) the same way.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from archzoo.errors import DataError, UserError

Augment = Callable[[Tensor, torch.Generator], Tensor]


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator whose state depends only on ``(seed, epoch, stream)``."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch * 7919 + stream * 104_729) % (2**63 - 1))
    return g


@runtime_checkable
class Split(Protocol):
    """What the engine needs of one split of a dataset.

    ``batches`` yields whatever the task of the data understands (a tuple of
    tensors, a :class:`PaddedBatch`, a PyG ``Batch`` or ``Data``); the task, not
    the engine, says what a batch counts (:meth:`archzoo.tasks.base.Task.count`).
    """

    def __len__(self) -> int:
        """The number of examples (images, windows, graphs, sequences, tokens of a stream)."""

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Batches in one pass at ``batch_size`` (the global batch under DDP)."""

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = False,
        augment: bool = False,
    ) -> Iterator[Any]:
        """Yield this rank's batches of one pass, from batch index ``start`` on."""

    def to(self, device: torch.device) -> Split:
        """The split with its tensors on ``device`` (itself when nothing moves)."""


def example_batch(split: Split, n: int = 2) -> Any:
    """A small first batch of ``split`` (for shape checks and probes), or None when it is empty."""
    return next(iter(split.batches(n)), None)


class TensorSplit:
    """One split of an in-memory dataset.

    Args:
        tensors: aligned tensors (inputs first), each with the sample count as dim 0.
        augment: a batched augmentation applied to the first tensor of training
            batches, ``augment(x, generator) -> x``.
    """

    options = frozenset({"batch_size", "eval_batch_size", "augment", "on_device"})

    def __init__(self, *tensors: Tensor, augment: Augment | None = None) -> None:
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError("all tensors of a split need the same number of samples")
        self.tensors = tensors
        self.augment = augment

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def to(self, device: torch.device) -> TensorSplit:
        """Move the split to ``device`` once, so batches need no host-device copy."""
        if self.tensors[0].device == device:
            return self
        return TensorSplit(*(t.to(device) for t in self.tensors), augment=self.augment)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = False,
        augment: bool = False,
    ) -> Iterator[tuple[Tensor, ...]]:
        """Yield batches, beginning at batch index ``start`` (for mid-epoch resume).

        In evaluation (``shuffle=False``) the ranks split the samples ``rank::world``
        so that every sample is seen exactly once across ranks.
        """
        n = len(self)
        device = self.tensors[0].device
        if shuffle:
            order = torch.randperm(n, generator=epoch_generator(seed, epoch)).to(device)
        else:
            order = None
        nb = self.num_batches(batch_size, drop_last)
        for i in range(start, nb):
            lo, hi = i * batch_size, min((i + 1) * batch_size, n)
            if order is not None:
                idx = order[lo:hi]
                out = tuple(t.index_select(0, idx) for t in self.tensors)
            else:
                out = tuple(t[lo:hi] for t in self.tensors)
            if augment and self.augment is not None:
                # One generator per global batch, applied before the rank slice: every sample
                # gets its own draw, the same as in one process, and resuming needs no replay.
                gen = epoch_generator(seed, epoch, stream=1 + i)
                out = (self.augment(out[0], gen), *out[1:])
            if world > 1:
                out = tuple(t[rank::world] for t in out)
            yield out


# --------------------------------------------------------------------- shared helpers


def _check_batching(batch_size: int, rank: int, world: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world} processes")


def _index_batches(
    n: int, batch_size: int, *, shuffle: bool, seed: int, epoch: int, start: int, drop_last: bool
) -> Iterator[Tensor]:
    """The global batches of sample indices of one pass, from batch ``start`` on.

    The order is ``randperm(n)`` from :func:`epoch_generator` when shuffling and
    ``0..n-1`` otherwise, cut into consecutive chunks of ``batch_size``.
    """
    order = torch.randperm(n, generator=epoch_generator(seed, epoch)) if shuffle else torch.arange(n)
    nb = n // batch_size if drop_last else -(-n // batch_size)
    for i in range(start, nb):
        yield order[i * batch_size : (i + 1) * batch_size]


def _rank_part(idx: Tensor, rank: int, world: int) -> Tensor:
    return idx[rank::world] if world > 1 else idx


# --------------------------------------------------------------------- token streams


def write_tokens(path: str | os.PathLike[str], ids: Any, dtype: Any = np.uint16) -> Path:
    """Write token ids as a raw ``.bin`` file that :meth:`TokenStream.from_file` maps.

    The file is written to a temporary file beside ``path`` and renamed over it,
    so a reader never sees a half-written corpus.

    Args:
        path (str or PathLike): the file to write.
        ids (array-like): 1-D integer token ids (a numpy array, a tensor or a list).
        dtype (numpy dtype, optional): the integer type on disk, wide enough for
            the largest id (default ``uint16``, enough for a GPT-2 vocabulary).

    Returns:
        The path written.
    """
    path = Path(path)
    arr = ids.detach().cpu().numpy() if isinstance(ids, Tensor) else np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"token ids must be 1-D, not of shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"token ids must be integers, not {arr.dtype}")
    dt = np.dtype(dtype)
    if arr.size:
        info = np.iinfo(dt)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise ValueError(f"token ids in [{lo}, {hi}] do not fit in {dt.name}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            arr.astype(dt, copy=False).tofile(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class TokenStream:
    r"""A 1-D token corpus cut into next-token ``(x, y)`` windows of ``block_size`` tokens.

    The tokens stay where they are (a ``np.memmap`` stays on disk): each batch
    gathers its windows with one numpy fancy index, so corpora larger than
    memory work. In both modes ``y`` is ``x`` shifted by one token.

    * ``mode="random"`` (GPT pre-training): in training (``shuffle=True``) batch
      ``i`` is ``batch_size`` window starts drawn uniformly, with replacement,
      from the ``len - block_size`` valid starts, by a generator seeded from
      ``(seed, epoch, 1 + i)``; so resuming at batch ``start`` needs no replay.
      An epoch is ``max(1, windows_per_epoch // batch_size)`` batches. In
      evaluation (``shuffle=False``) the corpus is read once, in order, as
      consecutive non-overlapping windows (row ``k`` of batch ``j`` is window
      ``j * batch_size + k``); the targets left over after the last full window,
      if any, come last as a batch of one shorter row, so every token but the
      first is a target exactly once.
    * ``mode="streams"`` (truncated BPTT for recurrent models): the corpus is cut
      into ``batch_size`` contiguous streams of ``len // batch_size`` tokens (the
      ``len % batch_size`` last tokens are dropped) and batch ``i`` is columns
      ``[i*T, (i+1)*T)`` of every stream, so row ``b`` of batch ``i + 1`` continues
      row ``b`` of batch ``i`` and a task may carry its hidden state across them.
      The last chunk is kept when it has at least one target, with a shorter
      ``T`` (the remaining tokens); every token of a stream but its first is a
      target exactly once. The order is the same in every epoch and with or
      without ``shuffle`` (``seed``, ``epoch`` and ``shuffle`` are ignored):
      shuffling would break the streams.

    Under DDP, mode ``"random"`` keeps rows ``rank::world`` of the global batch
    (in evaluation a rank gets no batch where its part would be empty, as for
    the short last row); mode ``"streams"`` keeps streams ``rank::world``, so
    each rank's hidden state continues its own streams, and needs
    ``batch_size`` divisible by ``world``.

    Args:
        tokens (numpy.ndarray): 1-D integer token ids, usually a read-only
            ``np.memmap``; kept as given, never copied whole.
        block_size (int): tokens per window, ``T``.
        mode (str, optional): ``"random"`` or ``"streams"`` (default ``"random"``).
        windows_per_epoch (int, optional): random windows in one training epoch
            of mode ``"random"`` (default ``(len - 1) // block_size``, as many as
            the corpus holds without overlap).

    Shapes:
        - **tokens:** :math:`(N,)`
        - **batch:** ``(x, y)``, two ``int64`` tensors of shape :math:`(B, T)`,
          where :math:`B` is this rank's rows (``batch_size // world`` in training)
          and :math:`T` is ``block_size`` except in the last, shorter batch of an
          evaluation pass (mode ``"random"``) or of every pass (mode ``"streams"``).
    """

    options = frozenset({"batch_size", "eval_batch_size", "on_device"})

    def __init__(
        self,
        tokens: np.ndarray,
        block_size: int,
        mode: Literal["random", "streams"] = "random",
        windows_per_epoch: int | None = None,
    ) -> None:
        if not isinstance(tokens, np.ndarray):
            raise TypeError(f"tokens must be a numpy array or np.memmap, not {type(tokens).__name__}")
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be a 1-D integer array, not {tokens.ndim}-D {tokens.dtype}")
        if mode not in ("random", "streams"):
            raise UserError(f"The token stream mode must be 'random' or 'streams', not {mode!r}.")
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, not {block_size}")
        n = int(tokens.shape[0])
        if n == 0:
            raise UserError("The corpus is empty.")
        if n < block_size + 1:
            raise UserError(f"The corpus has {n} tokens, fewer than block_size+1 = {block_size + 1}.")
        if windows_per_epoch is not None and windows_per_epoch < 1:
            raise ValueError(f"windows_per_epoch must be at least 1, not {windows_per_epoch}")
        self.tokens = tokens
        self.block_size = block_size
        self.mode = mode
        self.windows_per_epoch = windows_per_epoch if windows_per_epoch is not None else (n - 1) // block_size
        self.device: torch.device | None = None

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        dtype: Any,
        block_size: int,
        mode: Literal["random", "streams"] = "random",
        windows_per_epoch: int | None = None,
    ) -> TokenStream:
        """Map a raw token file (as :func:`write_tokens` writes it) read-only and wrap it.

        Args:
            path (str or PathLike): the ``.bin`` file.
            dtype (numpy dtype): the integer type of its tokens.
            block_size, mode, windows_per_epoch: as for :class:`TokenStream`.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"The token file {path} does not exist.")
        dt = np.dtype(dtype)
        size = path.stat().st_size
        if size == 0:
            raise UserError(f"The corpus {path} is empty.")
        if size % dt.itemsize:
            raise DataError(f"The token file {path} has {size} bytes, not a whole number of {dt.name} tokens.")
        return cls(np.memmap(path, dtype=dt, mode="r"), block_size, mode, windows_per_epoch)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def to(self, device: torch.device) -> TokenStream:
        """The same stream (sharing ``tokens``) whose batches are moved to ``device``."""
        device = torch.device(device)
        if self.device == device or (self.device is None and device.type == "cpu"):
            return self
        out = copy.copy(self)
        out.device = device
        return out

    def _streams(self, batch_size: int) -> tuple[int, int, int]:
        """(stream length, full chunks, tokens of the last short chunk's x) for ``batch_size`` streams."""
        n, t = len(self), self.block_size
        length = n // batch_size
        if length < 2:
            raise UserError(f"The corpus has {n} tokens, too few for {batch_size} streams of at least 2 tokens.")
        return length, (length - 1) // t, (length - 1) % t

    def num_batches(self, batch_size: int, drop_last: bool = False, *, shuffle: bool = True) -> int:
        """Batches in one pass at ``batch_size``.

        In mode ``"random"`` a training pass (``shuffle=True``, the default, which
        is what the engine asks for its schedule) and an evaluation pass differ;
        pass ``shuffle=False`` for the latter. ``drop_last`` drops the short
        batch(es) of an evaluation pass or of mode ``"streams"``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if self.mode == "streams":
            _, full, rest = self._streams(batch_size)
            return full + (1 if rest and not drop_last else 0)
        if shuffle:
            return max(1, self.windows_per_epoch // batch_size)
        windows = (len(self) - 1) // self.block_size
        if drop_last:
            return windows // batch_size
        return -(-windows // batch_size) + (1 if (len(self) - 1) % self.block_size else 0)

    def _gather(self, starts: np.ndarray, width: int) -> tuple[Tensor, Tensor]:
        """``x`` and ``y`` of the windows of ``width`` tokens beginning at ``starts``: one read of the array."""
        idx = starts[:, None] + np.arange(width + 1, dtype=np.int64)
        buf = torch.from_numpy(np.asarray(self.tokens[idx], dtype=np.int64))
        if self.device is not None and self.device.type != "cpu":
            buf = buf.to(self.device, non_blocking=True)
        return buf[:, :-1].contiguous(), buf[:, 1:].contiguous()

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = False,
        augment: bool = False,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield this rank's ``(x, y)`` batches of one pass, from batch index ``start`` on (``augment`` is ignored)."""
        _check_batching(batch_size, rank, world)
        t = self.block_size
        nb = self.num_batches(batch_size, drop_last, shuffle=shuffle)
        if self.mode == "streams":
            if batch_size % world:
                raise ValueError(f"batch_size={batch_size} must be divisible by world={world} in streams mode")
            length, full, rest = self._streams(batch_size)
            heads = np.arange(batch_size, dtype=np.int64)[rank::world] * length
            for i in range(start, nb):
                yield self._gather(heads + i * t, t if i < full else rest)
        elif shuffle:
            high = len(self) - t
            for i in range(start, nb):
                starts = torch.randint(high, (batch_size,), generator=epoch_generator(seed, epoch, stream=1 + i))
                yield self._gather(starts[rank::world].numpy(), t)
        else:
            windows = (len(self) - 1) // t
            full = -(-windows // batch_size)
            for i in range(start, nb):
                if i < full:
                    starts = np.arange(i * batch_size, min((i + 1) * batch_size, windows), dtype=np.int64) * t
                    starts, width = starts[rank::world], t
                else:  # the targets after the last full window
                    starts, width = np.array([windows * t], dtype=np.int64)[rank::world], len(self) - 1 - windows * t
                if len(starts):
                    yield self._gather(starts, width)


@dataclass
class DataBundle:
    """A dataset ready for the engine: train/val/test splits and facts about it.

    ``info`` carries what models and tasks need to know, such as ``num_classes``,
    ``in_channels``, ``image_size``, ``in_features``, ``classes`` (names),
    ``mean``/``std`` used for normalisation, and ``kind`` (``"image"``, ``"tabular"``).
    Builders read the keys they accept from it.
    """

    train: Split
    val: Split
    test: Split | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        s = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if s is None:
            raise UserError(f"This dataset has no '{name}' split.")
        return s


def holdout(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split ``range(n)`` into (train, val) index tensors with a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_val = int(round(n * fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values
