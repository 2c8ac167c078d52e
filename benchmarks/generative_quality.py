"""Likelihood and anomaly figures of the generative recipes on Fashion-MNIST.

* VAE: test negative ELBO and the importance-weighted (IWAE, k = 64) negative
  log-likelihood estimate, in nats per image, for the MLP VAE and the
  convolutional VAE trained the same number of epochs (issue 4: the
  convolutional one must beat the MLP one). The recipe's likelihood is
  Bernoulli on grey levels in [0, 1] (the usual VAE tutorial set-up), so the
  figures are comparable between the two models, not with binarised-MNIST
  literature values.
* Anomaly detection: a convolutional autoencoder trained on classes 0–4 only;
  ROC-AUC of the reconstruction error separating test images of classes 5–9.

Writes ``results/generative-vae.json`` and ``results/generative-anomaly.json``.
Usage: ``python benchmarks/generative_quality.py [--data-dir D] [--epochs 5]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402


def train(recipe: str, overrides: list[str], data_dir: str | None) -> tuple[dict, Trainer, float]:
    cfg = load_config(recipe, None, ["log.progress=lines", "log.dir=runs/benchmarks/generative", *overrides])
    t0 = time.perf_counter()
    tr = Trainer(cfg, data_dir=data_dir)
    res = tr.fit()
    return res, tr, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=5)
    a = p.parse_args()
    ep = [f"train.epochs={a.epochs}"]
    rows = []
    for model in ("vae_mlp", "vae_conv"):
        res, tr, wall = train("fashion-vae", [*ep, f"model.name={model}"], a.data_dir)
        rows.append(
            {
                "model": model,
                "parameters": sum(q.numel() for q in tr.model.parameters()),
                "test_neg_elbo_nats": res["test/neg_elbo"],
                "test_nll_iwae64_nats": res["test/nll_iwae64"],
                "epochs": a.epochs,
                "seconds": round(wall, 1),
            }
        )
        print(rows[-1], flush=True)
    mlp, conv = rows
    ok = (
        conv["test_nll_iwae64_nats"] < mlp["test_nll_iwae64_nats"]
        and conv["test_neg_elbo_nats"] < mlp["test_neg_elbo_nats"]
    )
    write_result(
        "generative-vae",
        {
            "summary": f"Fashion-MNIST VAEs (Bernoulli likelihood on grey levels), {a.epochs} epochs: test IWAE-64 NLL "
            f"MLP {mlp['test_nll_iwae64_nats']:.1f} vs conv {conv['test_nll_iwae64_nats']:.1f} nats "
            f"(neg. ELBO {mlp['test_neg_elbo_nats']:.1f} vs {conv['test_neg_elbo_nats']:.1f})",
            "value": f"conv {conv['test_nll_iwae64_nats']:.1f} nats",
            "target": "conv VAE beats MLP VAE",
            "meets_target": ok,
            "rows": rows,
        },
    )
    res, tr, wall = train("fashion-ae-anomaly", ep, a.data_dir)
    write_result(
        "generative-anomaly",
        {
            "summary": f"conv autoencoder on Fashion-MNIST classes 0-4, {a.epochs} epochs: ROC-AUC of reconstruction "
            "error for classes 5-9 on the test set",
            "value": f"AUC {res['test/auc']:.3f}",
            "auc": res["test/auc"],
            "seconds": round(wall, 1),
        },
    )
    print(f"anomaly AUC {res['test/auc']:.3f}")


if __name__ == "__main__":
    main()
