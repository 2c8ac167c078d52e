"""save_figure: folders made, the file written, a pyplot figure closed, a bare Figure saved without pyplot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from archzoo.viz.figure import save_figure  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_pyplot_figure_is_saved_into_new_folders_and_closed(tmp_path: Path) -> None:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "a" / "b" / "line.png", dpi=50)
    assert out == tmp_path / "a" / "b" / "line.png" and out.read_bytes()[:8] == PNG
    assert fig.number not in plt.get_fignums()


def test_a_bare_figure_is_saved_at_its_own_dpi(tmp_path: Path) -> None:
    import struct

    fig = Figure(figsize=(2, 3), dpi=40)
    fig.add_subplot().plot([0, 1])
    out = save_figure(fig, str(tmp_path / "bare.png"), tight=False)
    width, height = struct.unpack(">II", out.read_bytes()[16:24])  # the PNG header's IHDR size
    assert (width, height) == (80, 120)
