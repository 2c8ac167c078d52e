"""Keras 3 (torch backend) against archzoo's engine on the same architecture, arrays and epochs.

Usage: ``python benchmarks/keras_parity.py [diabetes-mlp] [fashion-mlp] [fashion-cnn]
[--epochs RECIPE=N ...] [--apis sequential functional] [--data-dir D]``.

For each recipe the config that ``archzoo keras`` runs (the recipe with ReduceLROnPlateau as its
schedule and EarlyStopping's patience, see :func:`archzoo.interop.keras3.keras_config`) is trained
with the same seed and archzoo's model builder (so from the same initial weights): by archzoo's Trainer and by Keras's ``compile``/``fit``
(once per API). Both at one thread. Each writes ``results/keras_parity-<recipe>.json``: Keras's
test accuracy (or test RMSE and MAE in the target's units for diabetes) beside archzoo's, the
training seconds of each (validation every epoch included in both) and their ratio. The target
is parity: Keras's accuracy within 1 point of archzoo's (RMSE within 5%).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

os.environ.setdefault("KERAS_BACKEND", "torch")
from archzoo.engine.trainer import Trainer  # noqa: E402
from archzoo.interop.keras3 import keras_config, train_keras  # noqa: E402

# Epochs by default: the recipes' own for the two MLPs would take the CNN's budget, so fewer here.
EPOCHS = {"diabetes-mlp": 60, "fashion-mlp": 5, "fashion-cnn": 2}
ANCHORS = {
    "fashion-mlp": (88.33, "MLP in zalando's Fashion-MNIST benchmark table (the recipe's anchor)"),
    "fashion-cnn": (92.5, "the fashion-cnn recipe's anchor for a CNN under 100K parameters"),
}


def run(recipe: str, epochs: int, apis: list[str], data_dir: str | None, tmp: Path) -> dict:
    over = [f"train.epochs={epochs}", "train.threads=1", "log.progress=none", f"log.dir={tmp}"]
    cfg, replaced = keras_config(recipe, over)
    torch.set_num_threads(1)
    trainer = Trainer(cfg, run_dir=tmp / f"{recipe}-archzoo", data_dir=data_dir)
    t0 = time.perf_counter()
    az = trainer.fit()
    az_wall = time.perf_counter() - t0
    az.update(json.loads((trainer.run_dir / "results.json").read_text()))  # train_seconds, epochs_run
    keras = {api: train_keras(cfg, api, tmp / f"{recipe}-{api}", data_dir, replaced) for api in apis}
    regression = cfg.task.name == "regression"
    first = keras[apis[0]]
    if regression:
        value, ref = first["test/rmse"], az["test/rmse"]
        target, meets, unit = round(ref * 1.05, 3), first["test/rmse"] <= ref * 1.05, "rmse"
    else:
        value, ref = round(100 * first["test/acc"], 2), round(100 * az["test/acc"], 2)
        target, meets, unit = round(ref - 1.0, 2), value >= ref - 1.0, "percent"
    ratio = first["train_seconds"] / az["train_seconds"]
    anchor, source = ANCHORS.get(recipe, (None, None))
    load = os.getloadavg()
    parts = []
    for api, r in keras.items():
        fig = f"RMSE {r['test/rmse']:.2f}, MAE {r['test/mae']:.2f}" if regression else f"{100 * r['test/acc']:.2f}%"
        parts.append(f"Keras {api} {fig} in {r['train_seconds']:.1f} s ({r['epochs_run']} epochs)")
    az_fig = f"RMSE {az['test/rmse']:.2f}, MAE {az['test/mae']:.2f}" if regression else f"{100 * az['test/acc']:.2f}%"
    summary = (
        f"{recipe} ({first['params']['archzoo']:,} params in both) at most {epochs} epochs"
        f"{'' if epochs == load_recipe_epochs(recipe) else f' (the recipe has {load_recipe_epochs(recipe)})'}, ReduceLROnPlateau and EarlyStopping(patience "
        f"{cfg.train.early_stopping}) in both: {'; '.join(parts)}; archzoo {az_fig} in "
        f"{az['train_seconds']:.1f} s ({az['epochs_run']} epochs); Keras/archzoo time {ratio:.2f}x; "
        f"1 thread, load average {load[0]:.1f} (1 min) on {os.cpu_count()} shared cores"
    )
    payload = {
        "recipe": recipe,
        "epochs": epochs,
        "recipe_epochs": load_recipe_epochs(recipe),
        "metric": "test/rmse" if regression else "test/acc",
        "value": value,
        "unit": unit,
        "target": target,
        "meets_target": bool(meets),
        "anchor": anchor,
        "anchor_source": source,
        "archzoo": {k: v for k, v in az.items() if k.startswith("test/")}
        | {"train_seconds": az["train_seconds"], "wall_seconds": round(az_wall, 2), "epochs_run": az["epochs_run"]},
        "keras": {api: {k: v for k, v in r.items() if k != "run_dir"} for api, r in keras.items()},
        "time_ratio_keras_over_archzoo": round(ratio, 3),
        "replaced_in_recipe": replaced,
        "load_average": [round(x, 2) for x in load],
        "summary": summary,
    }
    write_result(f"keras_parity-{recipe}", payload)
    print(summary)
    return payload


def load_recipe_epochs(recipe: str) -> int:
    from archzoo.config import load_config

    return load_config(recipe).train.epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipes", nargs="*", default=list(EPOCHS))
    p.add_argument("--epochs", nargs="*", default=[], help="RECIPE=N, e.g. fashion-cnn=3")
    p.add_argument("--apis", nargs="+", default=["sequential", "functional"], choices=["sequential", "functional"])
    p.add_argument("--data-dir")
    a = p.parse_args()
    epochs = dict(EPOCHS)
    for item in a.epochs:
        name, _, n = item.partition("=")
        epochs[name] = int(n)
    for r in a.recipes:
        if r not in EPOCHS:
            raise SystemExit(f"unknown recipe {r!r}; this benchmark runs {', '.join(EPOCHS)}")
    with tempfile.TemporaryDirectory() as tmp:
        for r in a.recipes:
            run(r, epochs[r], a.apis, a.data_dir, Path(tmp))


if __name__ == "__main__":
    main()
