"""ConvLSTM next-frame prediction against the two baselines a user would try, on the same test sequences.

Trains ``moving-convlstm`` (two Fashion-MNIST items bouncing in 32×32 frames; 9 frames in, the
10th out) through the engine and compares its test mean squared error per pixel with copying the
last input frame and with predicting an empty frame. Target: at most half the better baseline's
MSE. Writes ``results/convlstm-moving.json`` and a PNG strip (inputs, the true next frame, the
prediction) of a few test sequences under the run directory.

Usage: ``python benchmarks/convlstm_quality.py [--data-dir D] [--epochs N] [--threads T] [key=value ...]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402
from archzoo.viz.grid import save_image_grid  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, help="train.epochs (default: the recipe's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="dotted overrides of the recipe (model.args.hidden_channels=[32,32])")
    a = p.parse_args()
    epochs = [] if a.epochs is None else [f"train.epochs={a.epochs}"]
    cfg = load_config("moving-convlstm", None, [*epochs, f"train.threads={a.threads}",
                                                 "log.progress=lines", "log.dir=runs/benchmarks/convlstm",
                                                 *a.overrides])  # fmt: skip
    tr = Trainer(cfg, data_dir=a.data_dir)
    res = tr.fit()
    x, y = next(iter(tr.data.test.batches(len(tr.data.test))))  # every test sequence, in order
    model = tr.model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 100]) for i in range(0, len(x), 100)])
    mse = float(((pred - y) ** 2).mean())
    copy_last = float(((x[:, -1] - y) ** 2).mean())
    empty = float((y**2).mean())
    better = min(copy_last, empty)
    strip = torch.cat([torch.cat([x[i], y[i : i + 1], pred[i : i + 1]]) for i in range(4)])  # (4 * 11, 1, H, W)
    path = save_image_grid(strip, Path(tr.run_dir) / "strip.png", nrow=x.shape[1] + 2)
    print(f"test MSE: ConvLSTM {mse:.5f}, copy last frame {copy_last:.5f}, empty frame {empty:.5f}; strip {path}")
    write_result(
        "convlstm-moving",
        {
            "recipe": "moving-convlstm",
            "overrides": a.overrides,
            "model_args": dict(cfg.model.args),
            "epochs": tr.epoch,
            "parameters": sum(q.numel() for q in model.parameters()),
            "train_seconds": round(tr.elapsed, 1),
            "test_sequences": len(x),
            "mse": {"convlstm": mse, "copy_last": copy_last, "empty": empty},
            "ratio_to_better_baseline": mse / better,
            "target": 0.5,
            "meets_target": mse <= 0.5 * better,
            "test_rmse_from_run": res.get("test/rmse"),
        },
    )


if __name__ == "__main__":
    main()
