"""Graph generation scored as in GraphRNN: MMD of degree and clustering distributions, against an Erdős–Rényi baseline.

Each seed trains the shipped recipe (default ``community-graph-vae``) through the engine
with ``train.seed=<seed>``, samples ``--n`` graphs from it (sizes drawn from the training
graphs) and compares them with the held-out test graphs by the squared MMD of their degree
histograms (Gaussian TV kernel, sigma 1) and of their clustering-coefficient histograms
(100 bins, sigma 0.1) (:mod:`archzoo.tasks.graph_generation`). In the same run, the same
number of Erdős–Rényi graphs with the training graphs' sizes and pooled edge density, and
the training graphs themselves (how close two samples of the true distribution come), are
scored against the same test graphs. Lower is better; the target is to beat the
Erdős–Rényi baseline on both statistics (mean over seeds).

Writes ``results/graphgen-<dataset>.json``.

Usage: ``python benchmarks/graphgen_quality.py [recipe] [--seeds 0 1 2] [--n 256] [key=value ...]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402
from archzoo.tasks.graph_generation import (  # noqa: E402
    adjacency_list,
    edge_density,
    erdos_renyi,
    graph_mmds,
    unpad,
)
from archzoo.utils import unwrap  # noqa: E402

STATS = ("degree_mmd", "clustering_mmd")


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return statistics.mean(r[key] for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("args", nargs="*", help="the recipe (default community-graph-vae) and key=value overrides")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n", type=int, default=256, help="graphs sampled per seed (and Erdős–Rényi graphs)")
    a, overrides = p.parse_known_args()
    overrides += [x for x in a.args if "=" in x]
    a.recipe = next((x for x in a.args if "=" not in x), "community-graph-vae")
    torch.set_num_threads(1)
    model_rows, er_rows, seconds = [], [], []
    summary: dict = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            over = [f"log.dir={tmp}", "log.progress=none", "log.plots=false", "train.threads=1", *overrides]
            trainer = Trainer(load_config(a.recipe, None, [*over, f"train.seed={seed}"]))
            trainer.fit()
            summary = json.loads((trainer.run_dir / "results.json").read_text())
            seconds.append(summary["train_seconds"])
            train = adjacency_list(trainer.data.train.data_list)
            test = adjacency_list(trainer.data.test.data_list)
            sizes = torch.tensor(trainer.info["train_sizes"])
            model = unwrap(trainer.model).eval().cpu()
            adj, counts = model.sample(a.n, sizes, generator=torch.Generator().manual_seed(seed))
            sampled = unpad(adj, counts)
            density = edge_density(train)
            er = erdos_renyi(counts.tolist(), density, torch.Generator().manual_seed(1000 + seed))
            model_rows.append({**graph_mmds(sampled, test), "density": edge_density(sampled)})
            er_rows.append(graph_mmds(er, test))
            print(f"seed {seed}: model {model_rows[-1]}, Erdős–Rényi (p={density:.3f}) {er_rows[-1]}")
        reference = graph_mmds(train, test)
    dataset = trainer.cfg.data.name
    model_mean = {k: round(_mean(model_rows, k), 5) for k in STATS}
    er_mean = {k: round(_mean(er_rows, k), 5) for k in STATS}
    meets = all(model_mean[k] < er_mean[k] for k in STATS)
    payload = {
        "recipe": a.recipe,
        "overrides": overrides,
        "dataset": dataset,
        "metric": "degree and clustering MMD² to the test graphs (lower is better)",
        "seeds": a.seeds,
        "samples_per_seed": a.n,
        "test_graphs": len(test),
        "model": model_rows,
        "erdos_renyi": er_rows,
        "erdos_renyi_p": round(density, 4),
        "train_vs_test": {k: round(v, 5) for k, v in reference.items()},
        "train_density": round(density, 4),
        "model_mean": model_mean,
        "erdos_renyi_mean": er_mean,
        "value": f"degree {model_mean['degree_mmd']:.4f}, clustering {model_mean['clustering_mmd']:.4f}",
        "target": (
            f"below Erdős–Rényi (degree {er_mean['degree_mmd']:.4f}, clustering {er_mean['clustering_mmd']:.4f})"
        ),
        "meets_target": meets,
        "anchor": None,
        "parameters": summary["parameters"],
        "mean_train_seconds": round(statistics.mean(seconds), 2),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "summary": (
            f"{a.recipe}: {a.n} sampled graphs per seed vs the {len(test)} test graphs of {dataset}, "
            f"squared MMD (Gaussian TV kernel, GraphRNN's statistics) of degrees and clustering, mean of seeds "
            f"{', '.join(map(str, a.seeds))}; Erdős–Rényi with the training density p={density:.3f} scores "
            f"{er_mean['degree_mmd']:.4f} / {er_mean['clustering_mmd']:.4f}, the training graphs themselves "
            f"{reference['degree_mmd']:.4f} / {reference['clustering_mmd']:.4f}; "
            f"{summary['parameters']:,} params, {statistics.mean(seconds):.0f} s per training"
        ),
    }
    write_result(f"graphgen-{dataset.replace('_', '-')}", payload)


if __name__ == "__main__":
    main()
