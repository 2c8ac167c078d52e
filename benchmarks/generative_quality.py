"""Likelihood, reconstruction and anomaly figures of the generative recipes on Fashion-MNIST and MNIST.

* VAE: test negative ELBO and the importance-weighted (IWAE, k = 64) negative
  log-likelihood estimate, in nats per image, for the MLP VAE and the
  convolutional VAE trained the same number of epochs (issue 4: the
  convolutional one must beat the MLP one). The recipe's likelihood is
  Bernoulli on grey levels in [0, 1] (the usual VAE tutorial set-up), so the
  figures are comparable between the two models, not with binarised-MNIST
  literature values.
* Anomaly detection: a convolutional autoencoder trained on classes 0–4 only;
  ROC-AUC of the reconstruction error separating test images of classes 5–9.
* VQ-VAE: test reconstruction error (mean squared error per pixel in [0, 1])
  and the perplexity of the codebook usage over the test set (512 at most),
  with and without restarts of dead codes.
* RealNVP: the exact test negative log-likelihood of the 2-D flow on two moons
  (nats per point) and of the image flow on dequantised Fashion-MNIST (bits per
  dimension; ``--flow-epochs`` sets its length apart from the others).

* MNIST VAE (``mnist_vae``): the tutorial VAE of the mnist-vae recipe, trained
  for the recipe's own epochs: test negative ELBO and IWAE-64 NLL in nats per
  image (Bernoulli on grey levels, as above).
* MLP autoencoder (``ae``): the fashion-ae recipe, trained for its own epochs:
  test reconstruction error (MSE per pixel in [0, 1]) beside two baselines
  computed from the training images, the mean training image and PCA with as
  many components as the autoencoder's bottleneck (the best linear code).

Writes ``results/generative-{vae,anomaly,vqvae,flow,mnist-vae,ae}.json``.
Usage: ``python benchmarks/generative_quality.py [--data-dir D] [--epochs 5] [--flow-epochs 2]
[--only vae,anomaly,vqvae,flow,mnist_vae,ae] [--threads N] [--set key=value ...]``
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


SECTIONS = ("vae", "anomaly", "vqvae", "flow", "mnist_vae", "ae")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=5, help="epochs of the VAEs, the autoencoder and the VQ-VAE")
    p.add_argument("--flow-epochs", type=int, default=2, help="epochs of the Fashion-MNIST RealNVP")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--set", action="append", default=[], help="an override for every training, e.g. train.seed=1")
    a = p.parse_args()
    only = [x for x in a.only.split(",") if x]
    if unknown := [x for x in only if x not in SECTIONS]:
        raise SystemExit(f"Unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}.")
    common = [*([f"train.threads={a.threads}"] if a.threads else []), *a.set]
    ep = [f"train.epochs={a.epochs}", *common]
    if "vae" in only:
        vae_section(ep, a)
    if "anomaly" in only:
        res, tr, wall = train("fashion-ae-anomaly", ep, a.data_dir)
        write_result(
            "generative-anomaly",
            {
                "summary": f"conv autoencoder on Fashion-MNIST classes 0-4, {a.epochs} epochs: ROC-AUC of "
                "reconstruction error for classes 5-9 on the test set",
                "value": f"AUC {res['test/auc']:.3f}",
                "auc": res["test/auc"],
                "seconds": round(wall, 1),
            },
        )
        print(f"anomaly AUC {res['test/auc']:.3f}")
    if "vqvae" in only:
        vqvae_section(ep, a)
    if "mnist_vae" in only:
        mnist_vae_section(common, a)
    if "ae" in only:
        ae_section(common, a)
    if "flow" in only:
        moons, tr_m, wall_m = train("moons-realnvp", common, a.data_dir)
        res, tr, wall = train("fashion-realnvp", [f"train.epochs={a.flow_epochs}", *common], a.data_dir)
        params = sum(q.numel() for q in tr.model.parameters())
        write_result(
            "generative-flow",
            {
                "summary": f"RealNVP exact test NLL: two moons {moons['test/nll']:.3f} nats per point "
                f"({tr_m.cfg.train.epochs} epochs); dequantised Fashion-MNIST {res['test/bpd']:.3f} bits/dim "
                f"({params:,} params, {a.flow_epochs} epochs)",
                "value": f"{res['test/bpd']:.3f} bits/dim",
                "moons_test_nll_nats": moons["test/nll"],
                "moons_epochs": tr_m.cfg.train.epochs,
                "fashion_test_bpd": res["test/bpd"],
                "fashion_parameters": params,
                "fashion_epochs": a.flow_epochs,
                "fashion_run": str(tr.run_dir),
                "seconds": round(wall_m + wall, 1),
            },
        )


def mnist_vae_section(common: list[str], a: argparse.Namespace) -> None:
    """The mnist-vae recipe as shipped (its own epochs): test negative ELBO and IWAE-64 NLL."""
    res, tr, wall = train("mnist-vae", common, a.data_dir)
    params = sum(q.numel() for q in tr.model.parameters())
    epochs = tr.cfg.train.epochs
    write_result(
        "generative-mnist-vae",
        {
            "recipe": "mnist-vae",
            "summary": f"mnist-vae ({tr.cfg.model.name}, {params:,} params, {epochs} epochs, Bernoulli likelihood on "
            f"grey levels): test IWAE-64 NLL {res['test/nll_iwae64']:.1f} nats, negative ELBO "
            f"{res['test/neg_elbo']:.1f} (reconstruction {res['test/recon']:.1f} + KL {res['test/kl']:.1f})",
            "value": f"{res['test/nll_iwae64']:.1f} nats",
            "target": "–",
            "meets_target": None,
            "test_neg_elbo_nats": res["test/neg_elbo"],
            "test_nll_iwae64_nats": res["test/nll_iwae64"],
            "test_recon_nats": res["test/recon"],
            "test_kl_nats": res["test/kl"],
            "parameters": params,
            "epochs": epochs,
            "run": str(tr.run_dir),
            "seconds": round(wall, 1),
        },
    )
    print(f"mnist-vae: test NLL {res['test/nll_iwae64']:.2f}, neg. ELBO {res['test/neg_elbo']:.2f} nats", flush=True)


def ae_section(common: list[str], a: argparse.Namespace) -> None:
    """The fashion-ae recipe as shipped, beside the mean-image and PCA reconstructions of the same test images."""
    import torch

    from archzoo.data.splits import example_batch
    from archzoo.utils import unwrap

    res, tr, wall = train("fashion-ae", common, a.data_dir)
    k = int(unwrap(tr.model).latent_dim)
    x_train = example_batch(tr.data.train, len(tr.data.train))[0].flatten(1).double().cpu()  # (N, 784) in [0, 1]
    x_test = example_batch(tr.data.test, len(tr.data.test))[0].flatten(1).double().cpu()
    mean = x_train.mean(0, keepdim=True)
    mean_mse = float((x_test - mean).pow(2).mean())
    # PCA: project the centred test images on the top-k right singular vectors of the centred training images.
    _, _, vh = torch.linalg.svd(x_train - mean, full_matrices=False)
    basis = vh[:k].T  # (784, k)
    recon = (x_test - mean) @ basis @ basis.T + mean
    pca_mse = float((x_test - recon).pow(2).mean())
    params = sum(q.numel() for q in tr.model.parameters())
    epochs = tr.cfg.train.epochs
    ae_mse = res["test/mse"]
    write_result(
        "generative-ae",
        {
            "recipe": "fashion-ae",
            "summary": f"fashion-ae ({tr.cfg.model.name}, {k}-dimensional code, {params:,} params, {epochs} epochs): "
            f"test reconstruction MSE per pixel {ae_mse:.4f}; PCA with {k} components {pca_mse:.4f}, "
            f"the mean training image {mean_mse:.4f}",
            "value": f"MSE {ae_mse:.4f}",
            "target": "–",
            "meets_target": None,
            "below_pca": ae_mse < pca_mse,
            "test_mse": ae_mse,
            "pca_test_mse": pca_mse,
            "mean_image_test_mse": mean_mse,
            "latent_dim": k,
            "parameters": params,
            "epochs": epochs,
            "run": str(tr.run_dir),
            "seconds": round(wall, 1),
        },
    )
    print(f"fashion-ae: test MSE {ae_mse:.4f}, PCA-{k} {pca_mse:.4f}, mean image {mean_mse:.4f}", flush=True)


def vqvae_section(ep: list[str], a: argparse.Namespace) -> None:
    """The recipe with and without restarts of dead codes, so the effect on codebook usage is measured."""
    rows = []
    for threshold in (0.0, 1.0):
        res, tr, wall = train("fashion-vqvae", [*ep, f"model.args.restart_threshold={threshold}"], a.data_dir)
        rows.append(
            {
                "restart_threshold": threshold,
                "test_recon_mse": res["test/recon"],
                "test_perplexity": res["test/perplexity"],
                "parameters": sum(q.numel() for q in tr.model.parameters()),
                "epochs": a.epochs,
                "run": str(tr.run_dir),
                "seconds": round(wall, 1),
            }
        )
        print(rows[-1], flush=True)
    codes = tr.model.quantizer.num_codes
    off, on = rows
    write_result(
        "generative-vqvae",
        {
            "summary": f"fashion-vqvae (EMA codebook of {codes} codes, {on['parameters']:,} params, {a.epochs} epochs): "
            f"test codebook perplexity {off['test_perplexity']:.0f} without and {on['test_perplexity']:.0f} with "
            f"dead-code restarts; reconstruction MSE {off['test_recon_mse']:.4f} vs {on['test_recon_mse']:.4f} per pixel",
            "value": f"perplexity {on['test_perplexity']:.0f} of {codes}",
            "num_codes": codes,
            "rows": rows,
        },
    )


def vae_section(ep: list[str], a: argparse.Namespace) -> None:
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


if __name__ == "__main__":
    main()
