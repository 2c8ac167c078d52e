r"""Moving Fashion-MNIST: clothing items bouncing inside a frame, for next-frame prediction.

After Moving MNIST (Srivastava et al. 2015), with Fashion-MNIST items: each sequence
has ``objects`` items, each a Fashion-MNIST image shrunk to ``object_size`` pixels,
moving at a constant velocity and bouncing off the frame's borders; frames are the
pixel-wise maximum of the items. The first ``frames - 1`` frames are the input and the
last one the target. Training sequences draw items from the training images, test
sequences from the test images; positions, velocities and items come from a fixed
seed, so the data are the same everywhere. Everything is generated at once with
tensor indexing (no per-sequence Python).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from archzoo.data.idx import FASHION_MNIST, IDX_FILES, read_idx_split
from archzoo.data.root import find_dataset_dir
from archzoo.data.splits import DataBundle, TensorSplit
from archzoo.errors import UserError
from archzoo.registry import register_dataset

DATA_SEED = 0


def bounce(start: Tensor, velocity: Tensor, steps: int, room: int) -> Tensor:
    r"""Positions in :math:`[0, \text{room}]` of points moving at ``velocity`` and reflected at both ends.

    The unfolded position :math:`p = p_0 + v t` is folded by the triangle wave
    :math:`r - |(p \bmod 2r) - r|`. Shapes: start and velocity :math:`(\dots)`; returns :math:`(\dots, T)`.
    """
    t = torch.arange(steps, dtype=torch.float32)
    p = start.unsqueeze(-1) + velocity.unsqueeze(-1) * t  # (..., T)
    r = float(room)
    return (r - ((p % (2 * r)) - r).abs()).round().long()


def render(items: Tensor, rows: Tensor, cols: Tensor, size: int) -> Tensor:
    """Frames :math:`(N, T, 1, S, S)`: the maximum of the items ``(N, K, s, s)`` placed at ``rows``/``cols`` ``(N, K, T)``."""
    n, k, s, _ = items.shape
    t = rows.shape[-1]
    frames = torch.zeros(n, t, size, size)
    ar = torch.arange(s)
    nn_ = torch.arange(n)[:, None, None, None]  # (N, 1, 1, 1)
    tt = torch.arange(t)[None, :, None, None]  # (1, T, 1, 1)
    for j in range(k):  # a few objects; each placement is one indexed write for all sequences and steps
        r = rows[:, j, :, None, None] + ar[None, None, :, None]  # (N, T, s, 1)
        c = cols[:, j, :, None, None] + ar[None, None, None, :]  # (N, T, 1, s)
        layer = torch.zeros(n, t, size, size)
        layer[nn_, tt, r, c] = items[:, j, None].expand(n, t, s, s)
        frames = torch.maximum(frames, layer)
    return frames.unsqueeze(2)


def _sequences(images: Tensor, n: int, frames: int, size: int, objects: int, object_size: int, g: torch.Generator):
    pick = torch.randint(len(images), (n, objects), generator=g)
    items = F.interpolate(images[pick.reshape(-1)].float().unsqueeze(1) / 255.0, size=(object_size, object_size),
                          mode="area").reshape(n, objects, object_size, object_size)  # fmt: skip
    room = size - object_size
    start = torch.rand(n, objects, 2, generator=g) * room
    speed = 1.0 + 2.0 * torch.rand(n, objects, generator=g)  # 1 to 3 pixels a frame
    angle = 2 * torch.pi * torch.rand(n, objects, generator=g)
    velocity = torch.stack([speed * torch.sin(angle), speed * torch.cos(angle)], dim=-1)  # (N, K, 2)
    pos = bounce(start, velocity, frames, room)  # (N, K, 2, T)
    seq = render(items, pos[:, :, 0], pos[:, :, 1], size)  # (N, T, 1, S, S)
    return seq[:, :-1].contiguous(), seq[:, -1].contiguous()


@register_dataset("moving_fashion")
def moving_fashion(
    data_dir: str | None = None,
    n_train: int = 3000,
    n_val: int = 300,
    n_test: int = 300,
    frames: int = 10,
    size: int = 32,
    objects: int = 2,
    object_size: int = 14,
) -> DataBundle:
    """Sequences of ``frames`` frames of ``size``×``size`` pixels (see the module docstring).

    Args:
        n_train, n_val, n_test: sequences per split (default 3000, 300, 300).
        frames: frames per sequence, the last one the target (default 10).
        size: frame side in pixels (default 32).
        objects: items per sequence (default 2).
        object_size: item side in pixels (default 14).

    Shapes:
        batches ``(x, y)``: :math:`(B, T-1, 1, S, S)` and :math:`(B, 1, S, S)`, in [0, 1].
    """
    if frames < 2 or size <= object_size or objects < 1 or min(n_train, n_val, n_test) < 1:
        raise UserError("moving_fashion needs frames ≥ 2, size > object_size, objects ≥ 1 and every split non-empty.")
    spec = FASHION_MNIST
    folder = find_dataset_dir(
        spec.title, data_dir, subdirs=spec.subdirs,
        required=[(f"{s}.gz", s) for pair in IDX_FILES.values() for s in pair],
        how_to_get=spec.how_to_get, system_dirs=spec.system_dirs,
    )  # fmt: skip
    train_images = torch.from_numpy(read_idx_split(folder, "train")[0])
    test_images = torch.from_numpy(read_idx_split(folder, "test")[0])
    g = torch.Generator().manual_seed(DATA_SEED)
    tr = _sequences(train_images, n_train + n_val, frames, size, objects, object_size, g)
    te = _sequences(test_images, n_test, frames, size, objects, object_size, g)
    train = TensorSplit(tr[0][:n_train], tr[1][:n_train])
    val = TensorSplit(tr[0][n_train:], tr[1][n_train:])
    info: dict[str, Any] = {"kind": "frames", "in_channels": 1, "image_size": size, "frames": frames - 1}
    return DataBundle(train, val, TensorSplit(*te), info)
