"""Link prediction on Cora with the (V)GAE of Kipf & Welling (2016): test ROC-AUC and AP over seeds, through the engine.

Each seed trains the shipped recipe (``cora-vgae``, or ``cora-gae``) with
``train.seed=<seed>`` and ``data.args.split_seed=<seed>``: as in the paper, every run draws
its own 85/5/10 edge split and its own validation and test negatives, and its own
initialisation. The engine keeps the weights of the epoch with the best validation AUC
(the recipe's ``train.monitor``) and tests them. The figures are the mean ± standard
deviation (``ddof=1``) over the seeds of test AUC and AP, written to
``results/vgae-cora.json`` (``results/vgae-cora-gae.json`` for the GAE) beside the issue's
target and the paper's Table 1 (VGAE 91.4 / 92.6, GAE 91.0 / 92.0, with features).

Overrides (``key=value``) with ``--label L`` write another setting as ``results/vgae-cora-L.json``.

Usage: ``python benchmarks/vgae_quality.py [cora-vgae|cora-gae ...] [--seeds 0 1 ...] [--data-dir D] [--label L] [key=value ...]``
(default: both recipes, 10 seeds each; about a minute per seed on one busy thread).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import seeded_main, write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402

PAPER = "Kipf & Welling 2016, Table 1"
# target: the (test AUC, AP); anchor: the paper's figure (Cora, with features).
TARGETS: dict[str, dict] = {
    "cora-vgae": {"name": "vgae-cora", "target": {"auc": 0.914, "ap": 0.926}, "anchor": {"auc": 0.914, "ap": 0.926}},
    "cora-gae": {"name": "vgae-cora-gae", "target": None, "anchor": {"auc": 0.910, "ap": 0.920}},
}


def _ms(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def run(recipe: str, seeds: list[int], overrides: list[str], data_dir: str | None, runs: Path, label: str = "") -> dict:
    spec = TARGETS[recipe]
    auc, ap, best, seconds = [], [], [], []
    summary: dict = {}
    t0 = time.perf_counter()
    for seed in seeds:
        over = [f"log.dir={runs}", "log.progress=none", "log.plots=false", "train.threads=1", *overrides]
        cfg = load_config(recipe, None, [*over, f"train.seed={seed}", f"data.args.split_seed={seed}"])
        trainer = Trainer(cfg, data_dir=data_dir)
        results = trainer.fit()
        summary = json.loads((trainer.run_dir / "results.json").read_text())
        auc.append(round(results["test/auc"], 4))
        ap.append(round(results["test/ap"], 4))
        best.append(summary["best_epoch"])
        seconds.append(summary["train_seconds"])
        print(
            f"{recipe} seed {seed}: test AUC {auc[-1]:.4f} AP {ap[-1]:.4f} (best epoch {best[-1]}, {seconds[-1]:.1f} s)"
        )
    (auc_m, auc_s), (ap_m, ap_s) = _ms(auc), _ms(ap)
    target, anchor = spec["target"], spec["anchor"]
    meets = None if target is None else bool(auc_m >= target["auc"] and ap_m >= target["ap"])
    payload = {
        "recipe": recipe,
        "overrides": overrides,
        "metric": "test/auc, test/ap",
        "monitor": summary["monitor"],
        "seeds": seeds,
        "per_seed": {"auc": auc, "ap": ap},
        "mean": {"auc": round(auc_m, 4), "ap": round(ap_m, 4)},
        "std": {"auc": round(auc_s, 4), "ap": round(ap_s, 4)},
        "value": f"AUC {auc_m:.3f} ± {auc_s:.3f}, AP {ap_m:.3f} ± {ap_s:.3f}",
        "target": None if target is None else f"AUC ≥ {target['auc']}, AP ≥ {target['ap']}",
        "meets_target": meets,
        "anchor": anchor,
        "anchor_source": PAPER,
        "parameters": summary["parameters"],
        "best_epochs": best,
        "mean_train_seconds": round(statistics.mean(seconds), 2),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "summary": (
            f"{recipe}{' with ' + ' '.join(overrides) if overrides else ''}: Cora link prediction, test ROC-AUC and AP at the epoch of best validation AUC, "
            f"mean ± std of {len(seeds)} seeds ({seeds[0]}–{seeds[-1]}), each with its own 85/5/10 edge split; "
            f"paper ({PAPER}) AUC {anchor['auc']:.3f}, AP {anchor['ap']:.3f}; "
            f"{summary['parameters']:,} params, {statistics.mean(seconds):.1f} s per run, "
            f"{torch.get_num_threads()} thread"
        ),
    }
    if target is None:
        del payload["target"]  # the table shows "–"
    write_result(spec["name"] + (f"-{label}" if label else ""), payload)
    print(f"{recipe}: {payload['value']} over {len(seeds)} seeds (target {payload['target']})")
    return payload


def main() -> None:
    torch.set_num_threads(1)
    seeded_main(__doc__, TARGETS, run, "write results/<name>-<label>.json (another setting of the recipe)")


if __name__ == "__main__":
    main()
