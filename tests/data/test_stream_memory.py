"""A token stream over a 64 MiB memory-mapped corpus keeps its resident file pages bounded while reading all of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archzoo.data import splits
from archzoo.data.text import token_file


def _corpus_rss(path: Path) -> int:
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                inside = line.rstrip().endswith(str(path))
            elif inside and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").is_file(), reason="needs Linux's /proc/self/smaps")
def test_streaming_a_64_mib_corpus_keeps_its_mapped_pages_bounded(tmp_path: Path) -> None:
    path = tmp_path / "corpus.bin"
    np.random.default_rng(0).integers(0, 16, 32 << 20, dtype=np.uint16).tofile(path)  # 64 MiB of random ids
    bundle = token_file(str(path), vocab_size=16, block_size=1024, mode="streams", val_fraction=0.001)
    train = bundle.train
    budget = 16 << 20
    old = splits.RELEASE_BYTES
    splits.RELEASE_BYTES = budget
    try:
        peak, read = 0, 0
        for i, (x, _) in enumerate(train.batches(16)):
            read += x.numel() * 2
            if i % 25 == 0:  # reading smaps costs milliseconds: a sample every 25 batches
                peak = max(peak, _corpus_rss(path))
    finally:
        splits.RELEASE_BYTES = old
    assert read >= 60 << 20  # nearly the whole file, in file order
    assert train.releases >= 2
    # At most the budget plus what one batch of 16 streams maps (up to about 1 MiB each on Linux 6.18/ext4).
    assert peak <= budget + (32 << 20), peak
