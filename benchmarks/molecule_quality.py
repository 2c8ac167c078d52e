"""Molecular property prediction with the edge-aware MPNN: MoleculeNet and the embedded TPSA, over seeds, through the engine.

Each (dataset, split) trains the shipped recipe ``<dataset>-mpnn`` once per seed with
``train.seed=<seed>`` and ``data.args.split=<split>`` (``load_config`` and
``Trainer(...).fit()``); the engine keeps the weights of the epoch with the best
validation figure (the recipe's ``train.monitor``) and tests them. A random split changes
with the seed; the scaffold split is deterministic, so there the seed changes only the
initialisation and the batch order. The figure is the mean ± standard deviation (``ddof=1``)
of the test metric over the seeds, written to ``results/molecule-<dataset>-<split>.json``
beside the issue's target and the published figures:

* ESOL random: test RMSE ≤ 0.55 (log mol/L); MoleculeNet's MPNN 0.58 (Wu et al. 2018),
  chemprop's D-MPNN 0.555 (Yang et al. 2019). Scaffold split reported too.
* FreeSolv, Lipophilicity: test RMSE beside chemprop's 1.075 and 0.555 (random split).
* BBBP scaffold: test ROC-AUC (anchor not checked here: no copy of the papers' tables at hand).
* TPSA (embedded): test R² ≥ 0.99.

Usage: ``python benchmarks/molecule_quality.py [--datasets esol tpsa] [--splits random scaffold]
[--seeds 5] [--data-dir D] [key=value ...]`` (overrides go to every recipe).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402

CHEMPROP = "chemprop D-MPNN, Yang et al. 2019 (random split)"
# dataset -> metric, splits measured by default, and per split: (target, anchor, anchor source)
SPECS: dict[str, dict] = {
    "esol": {
        "metric": "test/rmse",
        "unit": "log mol/L",
        "splits": ["random", "scaffold"],
        "random": (0.55, 0.555, f"{CHEMPROP}; MoleculeNet MPNN 0.58, Wu et al. 2018"),
        "scaffold": (None, None, None),
    },
    "freesolv": {
        "metric": "test/rmse",
        "unit": "kcal/mol",
        "splits": ["random", "scaffold"],
        "random": (None, 1.075, CHEMPROP),
        "scaffold": (None, None, None),
    },
    "lipo": {
        "metric": "test/rmse",
        "unit": "logD",
        "splits": ["random", "scaffold"],
        "random": (None, 0.555, CHEMPROP),
        "scaffold": (None, None, None),
    },
    "bbbp": {
        "metric": "test/roc_auc",
        "unit": "",
        "splits": ["scaffold"],
        "scaffold": (None, None, "anchor not checked"),
        "random": (None, None, None),
    },
    "tpsa": {"metric": "test/r2", "unit": "", "splits": ["random"], "random": (0.99, None, None)},
}
LOWER_IS_BETTER = {"test/rmse"}


def run(dataset: str, split: str, seeds: list[int], overrides: list[str], data_dir: str | None, runs: Path) -> dict:
    spec = SPECS[dataset]
    metric = spec["metric"]
    target, anchor, source = spec.get(split, (None, None, None))
    recipe = f"{dataset}-mpnn"
    per_seed, seconds, epochs, others = [], [], [], []
    summary: dict = {}
    info: dict = {}
    t0 = time.perf_counter()
    for seed in seeds:
        over = [f"log.dir={runs}", "log.progress=none", "log.plots=false", "train.threads=1", *overrides]
        over += [f"train.seed={seed}", f"data.args.split={split}"]
        trainer = Trainer(load_config(recipe, None, over), data_dir=data_dir)
        results = trainer.fit()
        summary = json.loads((trainer.run_dir / "results.json").read_text())
        info = json.loads((trainer.run_dir / "info.json").read_text())
        per_seed.append(round(float(results[metric]), 4))
        others.append({k: round(float(v), 4) for k, v in results.items() if k.startswith("test/")})
        seconds.append(summary["train_seconds"])
        epochs.append(summary["best_epoch"])
        print(f"{recipe} {split} seed {seed}: {metric} {per_seed[-1]:.4f} ({seconds[-1]:.0f} s)", flush=True)
    mean = statistics.mean(per_seed)
    std = statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0
    meets = None if target is None else (mean <= target if metric in LOWER_IS_BETTER else mean >= target)
    sign = "≤" if metric in LOWER_IS_BETTER else "≥"
    unit = f" {spec['unit']}" if spec["unit"] else ""
    beside = f"; published {anchor} ({source})" if anchor is not None else (f"; {source}" if source else "")
    sizes = info.get("sizes", {})
    invalid = info.get("num_invalid", 0)
    note = f"{len(seeds)} seeds" + ("" if len(seeds) >= 5 else " (fewer than the issue's 5, to fit the time box)")
    text = (
        f"{recipe}, {split} 80/10/10 ({sizes.get('train')}/{sizes.get('val')}/{sizes.get('test')} molecules"
        + (f", {invalid} unparseable SMILES skipped and reported" if invalid else "")
        + f"): {metric} at the epoch of best {summary.get('monitor')}, mean ± std of {note} "
        f"({', '.join(map(str, seeds))}): {mean:.3f} ± {std:.3f}{unit}{beside}; "
        f"{summary.get('parameters', 0):,} params, {statistics.mean(seconds):.0f} s per run"
    )
    payload = {
        "recipe": recipe,
        "dataset": dataset,
        "split": split,
        "overrides": overrides,
        "metric": metric,
        "monitor": summary.get("monitor"),
        "seeds": seeds,
        "per_seed": per_seed,
        "test_metrics_per_seed": others,
        "mean": round(mean, 4),
        "std": round(std, 4),
        "value": f"{mean:.3f} ± {std:.3f}",
        "target": "–" if target is None else f"{sign} {target}",
        "target_value": target,
        "meets_target": meets,
        "anchor": anchor,
        "anchor_source": source,
        "summary": text,
        "note": note,
        "sizes": sizes,
        "num_invalid": invalid,
        "parameters": summary.get("parameters"),
        "best_epochs": epochs,
        "mean_train_seconds": round(statistics.mean(seconds), 1),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    write_result(f"molecule-{dataset}-{split}", payload)
    print(text)
    return payload


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(SPECS), choices=list(SPECS))
    p.add_argument("--splits", nargs="+", choices=["random", "scaffold"], help="default: each dataset's own")
    p.add_argument("--seeds", type=int, default=5, help="how many seeds, 0 .. N-1 (default 5)")
    p.add_argument("--data-dir")
    a, overrides = p.parse_known_args()
    bad = [o for o in overrides if "=" not in o]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)}")
    with tempfile.TemporaryDirectory() as tmp:
        for d in a.datasets:
            for split in a.splits or SPECS[d]["splits"]:
                run(d, split, list(range(a.seeds)), overrides, a.data_dir, Path(tmp))


if __name__ == "__main__":
    main()
