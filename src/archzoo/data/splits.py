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
* :class:`PaddedSequences`: variable-length sequences padded to the longest of
  each batch, with optional length bucketing; batches are :class:`PaddedBatch`.
* :class:`GraphBatches`: many small PyG graphs, batched with
  ``torch_geometric.data.Batch.from_data_list``.
* :class:`FullGraph`: one PyG graph with boolean node masks; every pass is the
  whole graph with the split's mask.
* :class:`LinkSplit`: one PyG graph with a split's positive and negative node
  pairs for link prediction (training negatives drawn afresh each epoch).
* :class:`SeriesWindows`: sliding ``(input, horizon)`` windows over a time
  series, with chronological spans (:func:`chronological_spans`).

:class:`TensorSplit` draws a batch with one ``index_select``; augmentation runs
on the whole batch at once (:mod:`archzoo.data.augment`). There is no
per-sample Python and no worker process. The permutation of epoch ``e`` comes
from a generator seeded with ``seed`` and ``e``, and the augmentation of batch
``i`` from one seeded with ``(seed, e, i)``. Under DDP every rank draws the same
global batch and keeps its own slice ``batch[rank::world]``, so the global batch
is the same as in one process. The other sharded kinds do the same, except that
a rank whose slice of a (last, short) global batch would be empty gets no batch
for it.
"""

from __future__ import annotations

import copy
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from archzoo.errors import DataError, UserError

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data

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
        return count_batches(len(self), batch_size, drop_last)

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


def count_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Batches of ``batch_size`` over ``n`` examples: the last one partial unless ``drop_last``."""
    return n // batch_size if drop_last else -(-n // batch_size)


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


#: Growth of the process's file-backed resident pages after which a token stream drops its corpus's mapped
#: pages (see TokenStream).
RELEASE_BYTES = 64 << 20


def _file_resident() -> int | None:
    """Bytes of file-backed (and shared) pages resident in this process: ``/proc/self/statm``'s third field.

    One small read, cheap enough for every batch; None where there is no such file (not Linux).
    """
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[2]) * mmap.PAGESIZE
    except (OSError, IndexError, ValueError):
        return None


class TokenStream:
    r"""A 1-D token corpus cut into next-token ``(x, y)`` windows of ``block_size`` tokens.

    The tokens stay where they are (a ``np.memmap`` stays on disk): each batch
    gathers its windows with one numpy fancy index, so corpora larger than
    memory work. In both modes ``y`` is ``x`` shifted by one token.

    **Bounded memory.** The pages of a mapped file that a process has read count in
    its resident set (``RssFile``) until the kernel reclaims them, so streaming
    over a corpus larger than memory would grow the RSS by the corpus read. How
    much one read maps is the kernel's choice (64 KiB of fault-around, or a whole
    large folio of the page cache: about 0.9 MiB a read was measured on Linux 6.18
    with ext4), so when ``tokens`` is a read-only ``np.memmap`` the stream measures
    it: after each batch it reads the process's file-backed resident size
    (``/proc/self/statm``, one small read) and, once that has grown by
    :data:`RELEASE_BYTES` since the last release, drops the whole mapping's pages
    from the process (``madvise(MADV_DONTNEED)``, one call; the data stays in the
    page cache, and a later read maps it again). The resident file pages so stay
    within ``RELEASE_BYTES`` plus what one batch maps. Without ``/proc`` (not
    Linux) it releases after every ``RELEASE_BYTES`` of windows read, which bounds
    nothing but the common case. ``benchmarks/stream_memory.py`` measures it on a
    1 GiB corpus.

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
        self._since: int | None = None  # file-backed resident bytes after the last release (or first read)
        self._read = 0  # bytes of windows read since then (the fallback without /proc)
        self.releases = 0  # how many times the mapped pages were dropped

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
        if self._since is None:  # the baseline of the page-release budget: before the first read
            self._since = _file_resident()
        idx = starts[:, None] + np.arange(width + 1, dtype=np.int64)
        buf = torch.from_numpy(np.asarray(self.tokens[idx], dtype=np.int64))
        self._note_read(starts, width + 1)
        if self.device is not None and self.device.type != "cpu":
            buf = buf.to(self.device, non_blocking=True)
        return buf[:, :-1].contiguous(), buf[:, 1:].contiguous()

    def _note_read(self, starts: np.ndarray, width: int) -> None:
        """After a batch's windows were read: drop the corpus's mapped pages once the file pages grew past the budget."""
        mm = getattr(self.tokens, "_mmap", None)  # np.memmap's mapping, shared by its slices
        # Only a read-only map: dropping a copy-on-write map's pages would lose what was written to them.
        if mm is None or getattr(self.tokens, "mode", None) != "r" or not hasattr(mmap, "MADV_DONTNEED"):
            return
        now = _file_resident()
        if now is None:
            self._read += len(starts) * width * self.tokens.itemsize
            due = self._read >= RELEASE_BYTES
        else:
            due = now - (self._since if self._since is not None else now) >= RELEASE_BYTES
        if due:
            mm.madvise(mmap.MADV_DONTNEED)  # read-only file pages: dropped from this process, kept in the cache
            self._since, self._read = _file_resident(), 0
            self.releases += 1

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


# --------------------------------------------------------------------- padded sequences


@dataclass
class PaddedBatch:
    """A batch of variable-length sequences padded to the longest one.

    Args:
        x (Tensor): the padded sequences; padding positions hold the split's ``pad_id``.
        lengths (Tensor): the true length of each sequence.
        y (Tensor, optional): one label per sequence, or one per position (padding
            positions then hold the split's ``label_pad_id``, ``-100`` by default), or a
            target sequence of its own length (sequence-to-sequence data, padded with the
            split's ``target_pad_id``).
        y_lengths (Tensor, optional): the true length of each target sequence, set when
            ``y`` is a target sequence and None otherwise.

    Shapes:
        - **x:** :math:`(B, L)` (``int64`` token ids) or :math:`(B, L, F)` (float features)
        - **lengths:** :math:`(B,)`, ``int64``
        - **y:** :math:`(B,)`, :math:`(B, L)`, :math:`(B, L_y)` with targets, or ``None``
        - **y_lengths:** :math:`(B,)`, ``int64``, or ``None``
        - **mask:** :math:`(B, L)`, ``bool``, true at real positions
        - **y_mask:** :math:`(B, L_y)`, ``bool``, true at real target positions (targets only)
    """

    x: Tensor
    lengths: Tensor
    y: Tensor | None = None
    y_lengths: Tensor | None = None

    @property
    def mask(self) -> Tensor:
        return torch.arange(self.x.shape[1], device=self.lengths.device) < self.lengths[:, None]

    @property
    def y_mask(self) -> Tensor:
        if self.y is None or self.y_lengths is None:
            raise ValueError("this batch has no target sequences")
        return torch.arange(self.y.shape[1], device=self.y_lengths.device) < self.y_lengths[:, None]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device, non_blocking: bool = False) -> PaddedBatch:
        return PaddedBatch(
            self.x.to(device, non_blocking=non_blocking),
            self.lengths.to(device, non_blocking=non_blocking),
            None if self.y is None else self.y.to(device, non_blocking=non_blocking),
            None if self.y_lengths is None else self.y_lengths.to(device, non_blocking=non_blocking),
        )


class PaddedSequences:
    r"""Variable-length sequences, batched as :class:`PaddedBatch` padded to each batch's longest.

    All sequences live in one flat tensor with offsets; a batch is one gather
    through a padded index matrix built with tensor operations, with no Python
    per sequence. A shuffled pass permutes the sequences with a generator from
    ``(seed, epoch)``. With ``bucket=True`` the permuted sequences are sorted by
    length within consecutive chunks of ``bucket_size``, cut into batches, and
    the batch order is shuffled by the same generator, so batches hold
    sequences of similar length (less padding) and the order stays a pure
    function of ``(seed, epoch)``; with ``drop_last`` the one short batch is
    dropped before that shuffle. An evaluation pass (``shuffle=False``) keeps
    the stored order and does not bucket. Under DDP each rank keeps
    ``batch[rank::world]`` of the global batch and pads to its own longest (a
    rank whose part would be empty gets no batch).

    With ``targets`` (sequence-to-sequence data) every sequence has a target
    sequence of its own length; a batch's ``y`` holds them padded to the
    longest target of the batch with ``target_pad_id`` and ``y_lengths`` their
    lengths. Targets are gathered with the same index as their sources, so
    order, bucketing (by source length), resume and DDP slices are unchanged.

    Args:
        sequences (list of Tensor): the sequences, 1-D (token ids) or 2-D
            (length × features); every one non-empty.
        labels (Tensor or list of Tensor, optional): one label per sequence (a
            tensor with the sequence count as dim 0, or a list of numbers), or
            one per position (a list of 1-D tensors as long as the sequences).
        targets (list of Tensor, optional): one non-empty 1-D target sequence per
            sequence, of any length (not together with ``labels``).
        target_pad_id (int, optional): the value at padding positions of the targets (default 0).
        pad_id (int or float, optional): the value at padding positions of ``x`` (default 0).
        bucket (bool, optional): sort by length within chunks when shuffling (default ``False``).
        bucket_size (int, optional): sequences per chunk (default ``50 * batch_size``).
        label_pad_id (int, optional): the value at padding positions of per-position
            labels (default ``-100``, the ignore index of cross entropy).

    Shapes:
        - **sequences:** :math:`N` tensors of shape :math:`(L_i,)` or :math:`(L_i, F)`
        - **batch:** :class:`PaddedBatch` with ``x`` :math:`(B, L)` or :math:`(B, L, F)`,
          ``lengths`` :math:`(B,)` and ``y`` :math:`(B, ...)`, :math:`(B, L)` or ``None``,
          where :math:`L = \max_b` ``lengths[b]``; with targets ``y`` :math:`(B, L_y)` and
          ``y_lengths`` :math:`(B,)`, where :math:`L_y = \max_b` ``y_lengths[b]``.
    """

    options = frozenset({"batch_size", "eval_batch_size", "on_device"})

    def __init__(
        self,
        sequences: Sequence[Tensor],
        labels: Tensor | Sequence[Any] | None = None,
        pad_id: float = 0,
        bucket: bool = False,
        bucket_size: int | None = None,
        label_pad_id: int = -100,
        targets: Sequence[Tensor] | None = None,
        target_pad_id: int = 0,
    ) -> None:
        if len(sequences) == 0:
            raise UserError("The split has no sequences.")
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
        empty = (lengths == 0).nonzero()
        if len(empty):
            raise UserError(f"Sequence {int(empty[0])} is empty; every sequence needs at least one element.")
        if any(s.dim() not in (1, 2) for s in sequences):
            raise ValueError("every sequence must be 1-D (ids) or 2-D (length x features)")
        if targets is not None:
            if labels is not None:
                raise ValueError("give labels or targets, not both")
            if len(targets) != len(sequences):
                raise ValueError(f"{len(targets)} targets for {len(sequences)} sequences")
            if any(t.dim() != 1 for t in targets):
                raise ValueError("every target sequence must be 1-D")
            t_lengths = torch.tensor([len(t) for t in targets], dtype=torch.int64)
            if bool((t_lengths == 0).any()):
                raise UserError(f"Target {int((t_lengths == 0).nonzero()[0])} is empty; every target needs an element.")
        values = torch.cat(list(sequences))
        per_position = False
        if labels is not None and not isinstance(labels, Tensor):
            if len(labels) and isinstance(labels[0], Tensor) and labels[0].dim() >= 1:
                lab_len = torch.tensor([len(v) for v in labels], dtype=torch.int64)
                if len(labels) != len(sequences) or not torch.equal(lab_len, lengths):
                    raise ValueError("per-position labels must have the lengths of their sequences")
                labels, per_position = torch.cat(list(labels)), True
            else:
                labels = torch.as_tensor(labels)
        self._init(values, lengths, labels, per_position, pad_id, bucket, bucket_size, label_pad_id)
        self._init_targets(
            None if targets is None else torch.cat(list(targets)), None if targets is None else t_lengths, target_pad_id
        )

    def _init_targets(self, values: Tensor | None, lengths: Tensor | None, pad_id: int) -> None:
        self.target_values = values  # (sum L_y_i,) or None
        self.target_lengths = None if lengths is None else lengths.to(values.device)  # (N,)
        self.target_offsets = None if lengths is None else torch.cumsum(self.target_lengths, 0) - self.target_lengths
        self._target_lengths_cpu = None if lengths is None else lengths.cpu()
        self.target_pad_id = pad_id
        if lengths is not None and len(lengths) != len(self.lengths):
            raise ValueError(f"{len(lengths)} targets for {len(self.lengths)} sequences")

    def _init(
        self,
        values: Tensor,
        lengths: Tensor,
        labels: Tensor | None,
        per_position: bool,
        pad_id: float,
        bucket: bool,
        bucket_size: int | None,
        label_pad_id: int,
    ) -> None:
        self.values = values  # (sum L_i, [F])
        self.lengths = lengths.to(values.device)  # (N,)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths  # (N,)
        self._lengths_cpu = lengths.cpu()
        self.labels, self.per_position = labels, per_position and labels is not None
        expected = values.shape[0] if self.per_position else len(lengths)
        if labels is not None and labels.shape[0] != expected:
            raise ValueError(f"{labels.shape[0]} labels where {expected} were expected")
        if bucket_size is not None and bucket_size < 1:
            raise ValueError(f"bucket_size must be at least 1, not {bucket_size}")
        self.pad_id, self.bucket, self.bucket_size, self.label_pad_id = pad_id, bucket, bucket_size, label_pad_id

    @classmethod
    def from_flat(
        cls,
        values: Tensor,
        lengths: Tensor,
        labels: Tensor | None = None,
        *,
        per_position: bool = False,
        pad_id: float = 0,
        bucket: bool = False,
        bucket_size: int | None = None,
        label_pad_id: int = -100,
        targets: Tensor | None = None,
        target_lengths: Tensor | None = None,
        target_pad_id: int = 0,
    ) -> PaddedSequences:
        """Build from the sequences already concatenated (``values``) and their ``lengths``.

        ``labels`` is one per sequence, or with ``per_position=True`` concatenated like ``values``;
        ``targets`` are target sequences concatenated likewise, with their ``target_lengths``.
        """
        lengths = torch.as_tensor(lengths, dtype=torch.int64)
        if len(lengths) == 0:
            raise UserError("The split has no sequences.")
        if bool((lengths <= 0).any()):
            raise UserError("Every sequence needs at least one element.")
        if int(lengths.sum()) != values.shape[0]:
            raise ValueError(f"lengths sum to {int(lengths.sum())}, but there are {values.shape[0]} values")
        out = cls.__new__(cls)
        out._init(values, lengths, labels, per_position, pad_id, bucket, bucket_size, label_pad_id)
        if (targets is None) != (target_lengths is None):
            raise ValueError("targets and target_lengths go together")
        if targets is not None and target_lengths is not None:
            if labels is not None:
                raise ValueError("give labels or targets, not both")
            target_lengths = torch.as_tensor(target_lengths, dtype=torch.int64)
            if bool((target_lengths <= 0).any()):
                raise UserError("Every target needs at least one element.")
            if int(target_lengths.sum()) != targets.shape[0]:
                raise ValueError(f"target_lengths sum to {int(target_lengths.sum())}, but there are {targets.shape[0]}")
        out._init_targets(targets, target_lengths, target_pad_id)
        return out

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def to(self, device: torch.device) -> PaddedSequences:
        """Move the stored sequences to ``device`` once, so a batch is gathered there."""
        if self.values.device == torch.device(device):
            return self
        out = copy.copy(self)
        out.values, out.lengths, out.offsets = (t.to(device) for t in (self.values, self.lengths, self.offsets))
        out.labels = None if self.labels is None else self.labels.to(device)
        if self.target_values is not None:
            out.target_values, out.target_lengths, out.target_offsets = (
                t.to(device) for t in (self.target_values, self.target_lengths, self.target_offsets)
            )
        return out

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return count_batches(len(self), batch_size, drop_last)

    def _order(self, batch_size: int, seed: int, epoch: int, drop_last: bool) -> list[Tensor]:
        """The global batches (index tensors) of a shuffled pass."""
        n = len(self)
        g = epoch_generator(seed, epoch)
        order = torch.randperm(n, generator=g)
        if not self.bucket:
            nb = self.num_batches(batch_size, drop_last)
            return [order[i * batch_size : (i + 1) * batch_size] for i in range(nb)]
        size = self.bucket_size or 50 * batch_size
        lens = self._lengths_cpu[order]
        # one stable sort by (chunk, length) sorts every chunk by length and keeps the chunks in place
        key = torch.arange(n) // size * (int(lens.max()) + 1) + lens
        order = order[torch.sort(key, stable=True).indices]
        batches = list(order.split(batch_size))
        if drop_last and len(batches[-1]) < batch_size:
            batches.pop()
        return [batches[j] for j in torch.randperm(len(batches), generator=g).tolist()]

    def _gather(self, idx: Tensor) -> PaddedBatch:
        lengths_cpu = self._lengths_cpu[idx]
        width = int(lengths_cpu.max())
        y_width = 0 if self._target_lengths_cpu is None else int(self._target_lengths_cpu[idx].max())
        idx = idx.to(self.values.device)
        lengths = self.lengths[idx]
        mask = torch.arange(width, device=idx.device) < lengths[:, None]  # (B, L)
        flat = torch.where(mask, self.offsets[idx][:, None] + torch.arange(width, device=idx.device), 0)
        x = self.values[flat]  # (B, L, [F])
        x = x.masked_fill(~mask.view(*mask.shape, *([1] * (x.dim() - 2))), self.pad_id)
        y = None
        if self.labels is not None:
            if self.per_position:
                y = self.labels[flat]
                y = y.masked_fill(~mask.view(*mask.shape, *([1] * (y.dim() - 2))), self.label_pad_id)
            else:
                y = self.labels[idx]
        if self.target_values is None:
            return PaddedBatch(x, lengths, y)
        y_lengths = self.target_lengths[idx]
        y_mask = torch.arange(y_width, device=idx.device) < y_lengths[:, None]  # (B, L_y)
        y_flat = torch.where(y_mask, self.target_offsets[idx][:, None] + torch.arange(y_width, device=idx.device), 0)
        y = self.target_values[y_flat].masked_fill(~y_mask, self.target_pad_id)  # (B, L_y)
        return PaddedBatch(x, lengths, y, y_lengths)

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
    ) -> Iterator[PaddedBatch]:
        """Yield this rank's padded batches of one pass, from batch index ``start`` on (``augment`` is ignored)."""
        _check_batching(batch_size, rank, world)
        if shuffle:
            glob: Iterator[Tensor] | list[Tensor] = self._order(batch_size, seed, epoch, drop_last)[start:]
        else:
            glob = _index_batches(
                len(self), batch_size, shuffle=False, seed=seed, epoch=epoch, start=start, drop_last=drop_last
            )
        for idx in glob:
            part = _rank_part(idx, rank, world)
            if len(part):
                yield self._gather(part)


# --------------------------------------------------------------------- graphs


def _graph_device(data: Any) -> torch.device:
    for _, value in data:
        if isinstance(value, Tensor):
            return value.device
    return torch.device("cpu")


def _moved(data: Data, device: torch.device) -> Data:
    """``data`` on ``device``, leaving ``data`` itself alone (PyG's ``Data.to`` works in place)."""
    return copy.copy(data).to(device)


class GraphBatches:
    r"""Many small graphs, batched by PyG into one disconnected graph per batch.

    A shuffled pass takes the graphs in the order of a permutation from
    ``(seed, epoch)``; an evaluation pass in stored order. Under DDP each rank
    keeps the graphs ``[rank::world]`` of the global batch (a rank whose part
    would be empty gets no batch). ``torch_geometric`` is imported only when a
    batch is made.

    Args:
        data_list (list of torch_geometric.data.Data): the graphs.

    Shapes:
        - **batch:** a ``torch_geometric.data.Batch`` of this rank's graphs (``x``
          :math:`(\sum_g |V_g|, F)`, ``edge_index`` :math:`(2, \sum_g |E_g|)`, ``batch``
          :math:`(\sum_g |V_g|,)`, graph-level ``y`` :math:`(B, \ldots)`, ...).
    """

    options = frozenset({"batch_size", "eval_batch_size", "on_device"})

    def __init__(self, data_list: Sequence[Data]) -> None:
        if len(data_list) == 0:
            raise UserError("The split has no graphs.")
        self.data_list = list(data_list)

    def __len__(self) -> int:
        return len(self.data_list)

    def to(self, device: torch.device) -> GraphBatches:
        """Move every graph to ``device`` once (copies of the ``Data`` objects; the originals stay)."""
        device = torch.device(device)
        if _graph_device(self.data_list[0]) == device:
            return self
        return GraphBatches([_moved(d, device) for d in self.data_list])

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return count_batches(len(self), batch_size, drop_last)

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
    ) -> Iterator[Batch]:
        """Yield this rank's graph batches of one pass, from batch index ``start`` on (``augment`` is ignored)."""
        from torch_geometric.data import Batch

        _check_batching(batch_size, rank, world)
        for idx in _index_batches(
            len(self), batch_size, shuffle=shuffle, seed=seed, epoch=epoch, start=start, drop_last=drop_last
        ):
            part = _rank_part(idx, rank, world).tolist()
            if part:
                yield Batch.from_data_list([self.data_list[j] for j in part])


class FullGraph:
    r"""One split of a single graph (a citation network, say): the whole graph with the split's node mask.

    Each pass yields one object: a shallow copy of the graph (its tensors are
    shared, not copied) with an attribute ``mask``, this split's boolean node
    mask; the task computes the model on the whole graph and the loss or
    metrics on ``mask``. Every rank gets the same graph and nothing is sharded:
    a full-graph step cannot be cut into independent parts without cutting
    edges, so every rank computes the same full-batch gradient (DDP then only
    keeps the replicas equal). ``batch_size``, ``shuffle``, ``seed``, ``epoch``,
    ``rank`` and ``world`` have no effect; ``start >= 1`` yields nothing.

    Use :meth:`FullGraph.splits` to build the train/val/test splits of one graph,
    so that :meth:`to` moves the graph to a device once for all of them.

    Args:
        data (torch_geometric.data.Data): the graph, with boolean node masks.
        mask_name (str): the mask of this split, such as ``"train_mask"``.

    Shapes:
        - **mask:** :math:`(|V|,)`, ``bool``
        - **batch:** ``Data`` with the graph's attributes (``x`` :math:`(|V|, F)`,
          ``edge_index`` :math:`(2, |E|)`, ``y`` :math:`(|V|, \ldots)`, ...) and ``mask`` :math:`(|V|,)`.
    """

    options = frozenset({"on_device"})

    def __init__(self, data: Data, mask_name: str, *, _cache: dict[torch.device, Data] | None = None) -> None:
        mask = getattr(data, mask_name, None)
        if mask is None:
            raise UserError(f"The graph has no node mask '{mask_name}'.")
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.dim() != 1:
            raise ValueError(f"'{mask_name}' must be a 1-D bool tensor")
        if mask.shape[0] != data.num_nodes:
            raise ValueError(f"'{mask_name}' has {mask.shape[0]} entries for {data.num_nodes} nodes")
        count = int(mask.sum())
        if count == 0:
            raise UserError(f"The split '{mask_name}' has no nodes.")
        self.data, self.mask_name, self.mask, self._count = data, mask_name, mask, count
        self._cache = {} if _cache is None else _cache
        self._cache.setdefault(mask.device, data)

    @classmethod
    def splits(
        cls, data: Data, names: Sequence[str] = ("train_mask", "val_mask", "test_mask")
    ) -> tuple[FullGraph, ...]:
        """One split per mask in ``names``, sharing the graph (and its copy on each device)."""
        cache: dict[torch.device, Data] = {}
        return tuple(cls(data, name, _cache=cache) for name in names)

    def __len__(self) -> int:
        return self._count

    def to(self, device: torch.device) -> FullGraph:
        """The split on ``device``; the graph is copied there once for every split made by :meth:`splits`."""
        device = torch.device(device)
        if self.mask.device == device:
            return self
        moved = self._cache.get(device)
        if moved is None:
            moved = self._cache[device] = _moved(self.data, device)
        out = copy.copy(self)  # checked already: no second look at the mask (a device sync)
        out.data, out.mask = moved, getattr(moved, self.mask_name)
        return out

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return 1

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
    ) -> Iterator[Data]:
        """Yield the graph with ``mask`` set to this split's mask, once (nothing when ``start >= 1``)."""
        if start >= 1:
            return
        out = copy.copy(self.data)
        out.mask = self.mask
        yield out


def _seeded_negatives(edge_index: Tensor, num_nodes: int, count: int, seed: int) -> Tensor:
    """``count`` node pairs that are not in ``edge_index`` (PyG's ``negative_sampling``), fixed by ``seed``.

    PyG draws the pairs with Python's ``random``; its state and torch's are saved and restored
    around the draw, so the pairs depend on ``seed`` alone and the run's own streams are untouched.
    """
    import random

    from torch_geometric.utils import negative_sampling

    state = random.getstate()
    try:
        random.seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            neg = negative_sampling(edge_index, num_nodes=num_nodes, num_neg_samples=count)
    finally:
        random.setstate(state)
    return neg  # (2, <= count): PyG gives fewer only when the graph is nearly complete


class LinkSplit:
    r"""One split of a link-prediction problem on a single graph: positive node pairs and negative ones.

    Each pass yields one PyG ``Data``: the graph's node features ``x``, the message-passing
    edges ``edge_index`` (the *training* edges, in both directions, for every split, so
    no validation or test edge is ever propagated over), and this split's labelled pairs:
    ``pos_edge_label_index`` (edges of the graph, one direction each) and
    ``neg_edge_label_index`` (non-edges). With ``resample=True`` (the training split) the
    negatives are drawn afresh each epoch with ``torch_geometric.utils.negative_sampling``
    as non-edges of the message-passing graph, as many as the positives, from a seed made
    of ``(seed, epoch)``; otherwise the negatives given are used on every pass (validation
    and test: fixed, seeded when the data was built). Like :class:`FullGraph`, every rank
    gets the whole split and nothing is sharded; ``batch_size`` has no effect and
    ``start >= 1`` yields nothing.

    Args:
        data (torch_geometric.data.Data): ``x`` and the message-passing ``edge_index``.
        pos (Tensor): positive pairs :math:`(2, P)`.
        neg (Tensor, optional): fixed negative pairs :math:`(2, Q)`; required unless ``resample``.
        resample (bool, optional): draw ``P`` new negatives each epoch (default False).

    Shapes:
        - **batch:** ``Data`` with ``x`` :math:`(N, F)`, ``edge_index`` :math:`(2, E_{train})`,
          ``pos_edge_label_index`` :math:`(2, P)` and ``neg_edge_label_index`` :math:`(2, Q)`.
    """

    options = frozenset({"on_device"})

    def __init__(self, data: Data, pos: Tensor, neg: Tensor | None = None, *, resample: bool = False) -> None:
        if pos.dim() != 2 or pos.size(0) != 2 or pos.size(1) == 0:
            raise UserError(f"A link split needs positive pairs of shape (2, P) with P > 0, got {tuple(pos.shape)}.")
        if neg is None and not resample:
            raise ValueError("a link split without resampling needs fixed negatives")
        self.data, self.pos, self.neg, self.resample = data, pos, neg, resample

    def __len__(self) -> int:
        """The labelled pairs of one pass: positives and negatives."""
        return self.pos.size(1) * 2 if self.neg is None else self.pos.size(1) + self.neg.size(1)

    def to(self, device: torch.device) -> LinkSplit:
        device = torch.device(device)
        if self.pos.device == device:
            return self
        neg = None if self.neg is None else self.neg.to(device)
        return LinkSplit(_moved(self.data, device), self.pos.to(device), neg, resample=self.resample)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return 1

    def negatives(self, seed: int, epoch: int) -> Tensor:
        """This pass's negative pairs: the fixed ones, or (``resample``) ones drawn from ``(seed, epoch)``."""
        if not self.resample:
            assert self.neg is not None
            return self.neg
        s = int(epoch_generator(seed, epoch, stream=5).initial_seed())
        return _seeded_negatives(self.data.edge_index, self.data.num_nodes, self.pos.size(1), s)

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
    ) -> Iterator[Data]:
        """Yield the graph with this split's positive and negative pairs, once (nothing when ``start >= 1``)."""
        if start >= 1:
            return
        out = copy.copy(self.data)
        out.pos_edge_label_index = self.pos
        out.neg_edge_label_index = self.negatives(seed, epoch)
        yield out


# --------------------------------------------------------------------- time series


def chronological_spans(length: int, val_len: int, test_len: int) -> tuple[tuple[int, int], ...]:
    """The ``(start, end)`` target spans of train, validation and test, in time order.

    Args:
        length (int): steps in the series, :math:`T`.
        val_len (int): steps whose targets are validation.
        test_len (int): the last steps, whose targets are test.

    Returns:
        ``((0, T - val_len - test_len), (T - val_len - test_len, T - test_len), (T - test_len, T))``.
    """
    if val_len < 0 or test_len < 0:
        raise ValueError(f"val_len and test_len must be non-negative, not {val_len} and {test_len}")
    a = length - val_len - test_len
    if a <= 0:
        raise UserError(f"The series has {length} steps, too few for {val_len} validation and {test_len} test steps.")
    return (0, a), (a, length - test_len), (length - test_len, length)


class SeriesWindows:
    r"""Sliding windows over a time series: ``input_len`` steps in, the next ``horizon`` steps as target.

    The split owns the windows whose whole target lies in ``[start, end)``: the
    first target index is at least ``start`` and the last is below ``end``, so no
    target crosses into another span; a window's inputs may reach back before
    ``start``, into earlier data (that is known at forecast time). Because the
    inputs need ``input_len`` earlier steps, indices below ``input_len`` are never
    targets. Window targets begin at ``max(start, input_len)`` and every
    ``stride`` steps after. The windows are ``Tensor.unfold`` views of the
    series; only a batch is copied. Order, ``drop_last`` and DDP are as for
    :class:`TensorSplit` (a permutation from ``(seed, epoch)``, rank keeps
    ``batch[rank::world]``; a rank whose part would be empty gets no batch).

    Args:
        series (Tensor): the series, :math:`(T,)` or :math:`(T, F)`.
        input_len (int): input steps per window.
        horizon (int): target steps per window.
        start (int): the first index of the span of targets.
        end (int): one past its last index.
        stride (int, optional): steps between consecutive windows (default 1).

    Shapes:
        - **series:** :math:`(T,)` or :math:`(T, F)`
        - **batch:** ``(x, y)``; for a 1-D series ``x`` :math:`(B, \text{input\_len})` and
          ``y`` :math:`(B, \text{horizon})`; for a 2-D series (even with :math:`F = 1`)
          ``x`` :math:`(B, \text{input\_len}, F)` and ``y`` :math:`(B, \text{horizon}, F)`.
    """

    options = frozenset({"batch_size", "eval_batch_size", "on_device"})

    def __init__(self, series: Tensor, input_len: int, horizon: int, start: int, end: int, stride: int = 1) -> None:
        if series.dim() not in (1, 2):
            raise ValueError(f"series must be (T,) or (T, F), not of shape {tuple(series.shape)}")
        if input_len < 1 or horizon < 1 or stride < 1:
            raise ValueError("input_len, horizon and stride must be at least 1")
        n = int(series.shape[0])
        if n == 0:
            raise UserError("The series is empty.")
        width = input_len + horizon
        if width > n:
            raise UserError(f"The series has {n} steps, fewer than input_len+horizon = {width}.")
        if not 0 <= start < end <= n:
            raise ValueError(f"the span [{start}, {end}) must satisfy 0 <= start < end <= {n}")
        first, last = max(start, input_len), end - horizon  # first target index of the first and last windows
        if last < first:
            raise UserError(
                f"The span [{start}, {end}) holds no window of {input_len} input and {horizon} target steps."
            )
        self.series, self.input_len, self.horizon, self.start, self.end, self.stride = (
            series, input_len, horizon, start, end, stride
        )  # fmt: skip
        self._count = (last - first) // stride + 1
        self._first = first - input_len  # where window 0 begins
        s2 = series if series.dim() == 2 else series[:, None]
        lo = self._first
        # (count, F, width): window k begins at lo + k * stride
        self._windows = s2[lo : lo + (self._count - 1) * stride + width].unfold(0, width, stride)

    def __len__(self) -> int:
        return self._count

    def target_index(self, k: Tensor | int) -> Tensor | int:
        """The series index of the first target of window ``k``."""
        return self._first + self.input_len + k * self.stride

    def to(self, device: torch.device) -> SeriesWindows:
        """Move the series to ``device`` once, so windows are gathered there."""
        if self.series.device == torch.device(device):
            return self
        return SeriesWindows(
            self.series.to(device), self.input_len, self.horizon, self.start, self.end, self.stride
        )  # fmt: skip

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        return count_batches(len(self), batch_size, drop_last)

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
        squeeze = self.series.dim() == 1
        for idx in _index_batches(
            len(self), batch_size, shuffle=shuffle, seed=seed, epoch=epoch, start=start, drop_last=drop_last
        ):
            part = _rank_part(idx, rank, world)
            if not len(part):
                continue
            win = self._windows.index_select(0, part.to(self._windows.device)).transpose(1, 2)  # (B, width, F)
            x, y = win[:, : self.input_len], win[:, self.input_len :]
            if squeeze:
                x, y = x.squeeze(-1), y.squeeze(-1)
            yield x.contiguous(), y.contiguous()


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

    def to(self, device: torch.device) -> DataBundle:
        """Every split on ``device`` (the data's facts unchanged)."""
        test = self.test.to(device) if self.test is not None else None
        return DataBundle(self.train.to(device), self.val.to(device), test, self.info)

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
