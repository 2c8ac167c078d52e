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

:class:`TensorSplit` draws a batch with one ``index_select``; augmentation runs
on the whole batch at once (:mod:`archzoo.data.augment`). There is no
per-sample Python and no worker process. The permutation of epoch ``e`` comes
from a generator seeded with ``seed`` and ``e``, and the augmentation of batch
``i`` from one seeded with ``(seed, e, i)``. Under DDP every rank draws the same
global batch and keeps its own slice ``batch[rank::world]``, so the global batch
is the same as in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from archzoo.errors import UserError

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
