"""Fréchet distance of generative models in archzoo's own Fashion-MNIST (or MNIST) classifier feature space.

For each model (VAE, DCGAN, cGAN, WGAN-GP, DDPM) the benchmark trains its recipe
(or takes a finished run given with ``--run NAME=RUN``), draws ``--n`` samples
(10,000 by default) and computes the Fréchet distance between Gaussians fitted
to the penultimate-layer features of a fashion-cnn classifier on those samples
and on the 10,000 test images (``archzoo.scoring``). Conditional models (cGAN,
class-conditional DDPM) draw 1,000 samples per class and also report the
classifier's accuracy on them (target ≥ 90%). The classifier is the run given
with ``--classifier``; if that directory holds no finished run, the benchmark
trains the fashion-cnn recipe there first.

As a floor, the distance between 10,000 real training images and the test set
is reported too. The expected ordering (issue 4) is DDPM < GANs < VAE; the JSON
says whether the measured one agrees, for the models measured so far. The
distances are not Inception FIDs: compare them with each other only.

``--sample ddpm=guidance=4 --label g4`` scores a run with another sampling
setting into ``results/generative-frechet-ddpm-g4.json``, beside the default
one; the summary compares each model at its best recorded sampling and says
which, and the class-accuracy target counts any of them.

Each model writes ``results/generative-frechet-<name>.json``; the summary
``results/generative-frechet.json`` is rewritten from all of them after every
invocation, so models can be measured in separate (or parallel) invocations.

``--dataset mnist`` does the same for the MNIST recipes (the MLP GAN, DCGAN and
the VAE as the baseline) in the features of an mnist-cnn (LeNet-5) classifier,
into ``results/generative-mnist-frechet-<name>.json`` and the summary
``results/generative-mnist-frechet.json``; there is no expected ordering for it.

Usage::

    python benchmarks/generative_frechet.py [--models vae,dcgan] [--epochs dcgan=3] \
        [--set ddpm=model.args.base_channels=32] [--run vae=RUN] [--n 10000] [--classifier RUN]
    python benchmarks/generative_frechet.py --dataset mnist --real --classifier RUN [--models gan_mlp,dcgan,vae]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402
from archzoo.config import load_config  # noqa: E402
from archzoo.engine.run import load_run  # noqa: E402
from archzoo.engine.trainer import Trainer  # noqa: E402
from archzoo.scoring import ClassifierFeatures, frechet_distance, gaussian_stats, real_images, score_run  # noqa: E402

# name: (recipe, sampling arguments)
MODELS = {
    "vae": ("fashion-vae", {}),
    "dcgan": ("fashion-dcgan", {}),
    "cgan": ("fashion-cgan", {}),
    "wgan_gp": ("fashion-wgan-gp", {}),
    # Guidance 4: of the weights 2, 4 and 6 scored on the 2-epoch CPU DDPM (results/generative-frechet-ddpm-2ep-g*.json)
    # it gave the lowest distance (1.44, 1.15, 1.31); class accuracy rises with the weight (80.5%, 92.4%, 95.3%).
    "ddpm": ("fashion-ddpm", {"steps": 25, "guidance": 4.0, "method": "ddim"}),
}
GANS = ("dcgan", "wgan_gp")
# MNIST: the tutorials' two GANs, with the tutorial VAE as the baseline the Fashion figures also have.
MNIST_MODELS = {
    "gan_mlp": ("mnist-gan", {}),
    "dcgan": ("mnist-dcgan", {}),
    "vae": ("mnist-vae", {}),
}


@dataclass(frozen=True)
class Dataset:
    """What the benchmark needs per dataset: the generators, the feature classifier and where results go."""

    models: dict[str, tuple[str, dict[str, Any]]]
    classifier: str  # the recipe of the feature classifier
    classifier_dir: str  # its default run directory
    prefix: str  # result files are <prefix>.json (summary) and <prefix>-<name>.json


DATASETS = {
    "fashion": Dataset(MODELS, "fashion-cnn", "runs/benchmarks/frechet/classifier", "generative-frechet"),
    "mnist": Dataset(MNIST_MODELS, "mnist-cnn", "runs/benchmarks/frechet/mnist-classifier", "generative-mnist-frechet"),
}


def _pairs(items: list[str], what: str, models: dict[str, Any] = MODELS) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in models:
            raise SystemExit(f"{what} takes NAME=VALUE with NAME one of {', '.join(models)}; got '{item}'.")
        out.setdefault(name, []).append(value)
    return out


def sampling_settings(name: str, items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` sampling settings for one model, typed as ``score_run`` takes them."""
    types: dict[str, Any] = {"steps": int, "guidance": float, "method": str}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise SystemExit(f"--sample takes {name}=KEY=VALUE with KEY one of {', '.join(types)}; got '{item}'.")
        try:
            out[key] = types[key](value)
        except ValueError:
            raise SystemExit(f"--sample {name}={item}: '{value}' is not a valid {key}.") from None
    return out


def recipe_changes(recipe: str, cfg: Any) -> list[str]:
    """The settings in which a run's config differs from its recipe, as ``key=value`` overrides."""
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{key}.{k}" if key else k)
        elif a != b and not key.startswith("log."):
            out.append(f"{key}={json.dumps(b)}")

    walk(asdict(load_config(recipe, None, [])), asdict(cfg), "")
    return out


def _finished(run: Path) -> bool:
    return (run / "config.yaml").is_file() and (run / "model.safetensors").is_file()


def classifier_run(path: Path, data_dir: str | None, recipe: str = "fashion-cnn", threads: int = 0) -> Trainer:
    if not _finished(path):
        print(f"training the {recipe} classifier into {path}", flush=True)
        cfg = load_config(recipe, None, ["log.progress=lines", *([f"train.threads={threads}"] if threads else [])])
        Trainer(cfg, run_dir=path, data_dir=data_dir).fit()
    return load_run(path, data_dir)


def train_or_load(
    name: str,
    overrides: list[str],
    run: str | None,
    data_dir: str | None,
    weights: str = "final",
    models: dict[str, Any] = MODELS,
) -> tuple[Trainer, float | None]:
    if run:
        done = Path(run) / "results.json"  # written by the engine when the run finished
        seconds = json.loads(done.read_text()).get("train_seconds") if done.is_file() else None
        return load_run(run, data_dir, weights), seconds
    recipe = models[name][0]
    cfg = load_config(recipe, None, ["log.progress=lines", "log.dir=runs/benchmarks/frechet", *overrides])
    t0 = time.perf_counter()
    tr = Trainer(cfg, data_dir=data_dir)
    tr.fit()
    return load_run(tr.run_dir, data_dir), time.perf_counter() - t0


def summarize(ds: Dataset = DATASETS["fashion"]) -> None:
    """Rewrite the summary from every per-model result file."""
    if ds.prefix != DATASETS["fashion"].prefix:
        summarize_plain(ds)
        return
    rows = {}
    for f in sorted(RESULTS.glob("generative-frechet-*.json")):
        r = json.loads(f.read_text())
        rows[r["name"]] = r
    if not rows:
        return
    # A labelled row is the same run sampled another way (e.g. another guidance weight, named in its summary).
    # Each model is compared at its best recorded sampling, and the summary names that sampling. Labelled rows
    # of another run than the unlabelled one (e.g. left from an earlier, shorter training) are not compared,
    # nor are a run's unaveraged weights (--weights raw).
    family = {}
    for k in MODELS:
        fam = {r: v for r, v in rows.items() if r == k or r.startswith(f"{k}-")}
        # --weights raw rows show what a run's weight average buys; the run's own result is the average.
        family[k] = {
            r: v
            for r, v in fam.items()
            if (k not in fam or v.get("run") == fam[k].get("run")) and v.get("weights") != "raw"
        }
    # Fréchet distances are comparable at equal sample counts only: compare at the smallest count scored.
    common = min((v["n_generated"] for fam in family.values() for v in fam.values()), default=0)

    def at_common(v: dict) -> float | None:
        return v["frechet"] if v["n_generated"] == common else v.get("frechet_at", {}).get(str(common))

    fd: dict[str, float] = {}
    chosen: dict[str, str] = {}
    for k, fam in family.items():
        scored = {r: d for r, v in fam.items() if (d := at_common(v)) is not None}
        if scored:
            chosen[k] = min(scored, key=lambda r: scored[r])
            fd[k] = scored[chosen[k]]
    ordering = None
    if all(k in fd for k in ("vae", "ddpm", *GANS)):
        ordering = fd["ddpm"] < min(fd[g] for g in GANS) and max(fd[g] for g in GANS) < fd["vae"]
    cond = {k: v["class_accuracy"] for k, v in rows.items() if v.get("class_accuracy") is not None}
    cond_ok = None
    if all(any(r in cond for r in family[k]) for k in ("cgan", "ddpm")):
        # The target asks whether the model's conditional samples can be classified correctly: any sampling counts.
        cond_ok = all(any(v >= 0.9 for r, v in cond.items() if r in family[k]) for k in ("cgan", "ddpm"))

    def setting(row: str) -> str:
        sampling = rows[row].get("sampling") or {}
        parts = [f"{sampling['steps']} steps"] if sampling.get("steps") is not None else []
        parts += [f"guidance {sampling['guidance']:g}"] if sampling.get("guidance") is not None else []
        return f" ({', '.join(parts)})" if parts else ""

    measured = ", ".join(f"{k}{setting(chosen[k])} {v:.2f}" for k, v in sorted(fd.items(), key=lambda kv: kv[1]))
    acc = ", ".join(
        f"{r} {100 * cond[r]:.1f}%{setting(r)}" for fam in family.values() for r in sorted(fam) if r in cond
    )
    missing = [k for k in MODELS if not family[k]]
    write_result(
        "generative-frechet",
        {
            "summary": (
                f"Fréchet distance in fashion-cnn feature space ({common:,} samples each vs the test set), lowest first: {measured}"
                + (f"; real train vs test {rows['real']['frechet']:.3f}" if "real" in rows else "")
                + (f"; conditional samples classified correctly: {acc}" if acc else "")
                + (f"; not measured: {', '.join(missing)}" if missing else "")
            ),
            "value": f"ordering as expected: {_word(ordering)}; conditional ≥ 90%: {_word(cond_ok)}",
            "target": "DDPM < GANs < VAE; cGAN and conditional DDPM ≥ 90%",
            "frechet": fd,
            "compared_results": chosen,
            "compared_at_samples": common,
            "class_accuracy": cond,
            "ordering_as_expected": ordering,
            "conditional_meets_target": cond_ok,
            "meets_target": None if ordering is None or cond_ok is None else bool(ordering and cond_ok),
            "not_measured": missing,
        },
    )


def summarize_plain(ds: Dataset) -> None:
    """The summary of a dataset with no expected ordering: each model's distance at the smallest common count."""
    rows = {}
    for f in sorted(RESULTS.glob(f"{ds.prefix}-*.json")):
        r = json.loads(f.read_text())
        rows[r["name"]] = r
    scored = {k: rows[k] for k in ds.models if k in rows}
    if not scored:
        return
    common = min(v["n_generated"] for v in scored.values())
    fd = {
        k: v["frechet"] if v["n_generated"] == common else v.get("frechet_at", {}).get(str(common))
        for k, v in scored.items()
    }
    fd = {k: d for k, d in fd.items() if d is not None}
    ranked = sorted(fd.items(), key=lambda kv: kv[1])
    measured = ", ".join(f"{k} ({rows[k]['recipe']}) {d:.2f}" for k, d in ranked)
    missing = [k for k in ds.models if k not in fd]
    real = rows.get("real")
    write_result(
        ds.prefix,
        {
            "summary": (
                f"Fréchet distance in {ds.classifier} feature space ({common:,} samples each vs the test set), "
                f"lowest first: {measured}"
                + (f"; real train vs test {real['frechet']:.3f}" if real else "")
                + (f"; not measured: {', '.join(missing)}" if missing else "")
            ),
            "value": ", ".join(f"{k} {d:.2f}" for k, d in ranked),
            "target": "–",
            "meets_target": None,
            "frechet": fd,
            "real_frechet": real["frechet"] if real else None,
            "compared_at_samples": common,
            "not_measured": missing,
        },
    )


def _word(v: bool | None) -> str:
    return {True: "yes", False: "no", None: "not all measured"}[v]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument(
        "--dataset",
        choices=list(DATASETS),
        default="fashion",
        help="fashion: the Fashion-MNIST recipes in fashion-cnn features; mnist: the MNIST ones in mnist-cnn features",
    )
    p.add_argument(
        "--models",
        help=f"comma-separated subset (fashion: {', '.join(MODELS)}; mnist: {', '.join(MNIST_MODELS)}); default all",
    )
    p.add_argument(
        "--classifier",
        help="the feature classifier's run directory (default: runs/benchmarks/frechet/classifier for fashion, "
        "runs/benchmarks/frechet/mnist-classifier for mnist); trained there from its recipe if it holds no run",
    )
    p.add_argument("--n", type=int, default=10_000, help="samples per model (default 10000)")
    p.add_argument("--n-for", action="append", default=[], help="NAME=N: a smaller sample count for one model")
    p.add_argument("--also-at", type=int, default=2000, help="also report the distance of the first K samples")
    p.add_argument("--epochs", action="append", default=[], help="NAME=EPOCHS, e.g. dcgan=3")
    p.add_argument("--set", action="append", default=[], help="NAME=OVERRIDE, e.g. ddpm=model.args.base_channels=32")
    p.add_argument("--run", action="append", default=[], help="NAME=RUN: score a finished run instead of training")
    p.add_argument(
        "--sample",
        action="append",
        default=[],
        help="NAME=KEY=VALUE: a sampling setting (steps, guidance, method), e.g. ddpm=guidance=3",
    )
    p.add_argument(
        "--label",
        help="a suffix for the result (generative-frechet-NAME-LABEL), to keep a second sampling of a model beside "
        "the first; the summary compares each model at its best recorded sampling and names it",
    )
    p.add_argument(
        "--weights",
        choices=["final", "last", "raw"],
        default="final",
        help="weights of --run runs (last: last checkpoint; raw: its weights without the train.ema_decay average)",
    )
    p.add_argument("--real", action="store_true", help="also measure the real-train-vs-test floor")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    ds = DATASETS[a.dataset]
    models = ds.models
    names = [m for m in (a.models or ",".join(models)).split(",") if m]
    if unknown := [m for m in names if m not in models]:
        raise SystemExit(f"Unknown model(s) {', '.join(unknown)} for {a.dataset}; choose from {', '.join(models)}.")
    epochs, sets, runs = (_pairs(x, w, models) for x, w in ((a.epochs, "--epochs"), (a.set, "--set"), (a.run, "--run")))
    n_for = {k: int(v[-1]) for k, v in _pairs(a.n_for, "--n-for", models).items()}
    sampling_for = {k: sampling_settings(k, v) for k, v in _pairs(a.sample, "--sample", models).items()}
    clf = classifier_run(Path(a.classifier or ds.classifier_dir), a.data_dir, ds.classifier, a.threads)

    if a.real:
        feats = ClassifierFeatures(clf)
        x_test, y_test = real_images(clf)
        x_train, _ = real_images(clf, "train", n=len(x_test))
        f_test, logits = feats(x_test)
        d = frechet_distance(*gaussian_stats(f_test), *gaussian_stats(feats(x_train)[0]))
        clf_acc = float((logits.argmax(1) == y_test).float().mean())
        write_result(
            f"{ds.prefix}-real",
            {
                "name": "real",
                "summary": f"Fréchet floor: {len(x_train):,} real training images vs the {len(x_test):,} test images",
                "value": f"{d:.3f}",
                "frechet": d,
                "classifier": str(clf.run_dir),
                "classifier_test_acc": clf_acc,
            },
        )

    for name in names:
        recipe, sampling = models[name]
        sampling = {**sampling, **sampling_for.get(name, {})}
        overrides = [*(f"train.epochs={e}" for e in epochs.get(name, [])), *sets.get(name, [])]
        if a.threads:
            overrides.append(f"train.threads={a.threads}")
        run_given = (runs.get(name) or [None])[-1]
        run, train_seconds = train_or_load(name, overrides, run_given, a.data_dir, a.weights, models)
        if a.threads:  # loading a run applies its own train.threads; sampling runs on --threads
            torch.set_num_threads(a.threads)
        res = score_run(run, clf, n=n_for.get(name, a.n), also_at=(a.also_at,), **sampling)
        cfg = run.cfg
        # --weights last may score a checkpoint from before the end of the run: report the epochs it holds.
        trained: float = cfg.train.epochs
        done = Path(run.run_dir) / "results.json"
        if name not in runs and done.is_file():  # train.max_time may have stopped it early
            trained = json.loads(done.read_text())["epochs_run"]
        if name in runs and a.weights in ("last", "raw"):
            nb = run.data.train.num_batches(cfg.data.train_batch)
            trained = run.epoch if run.batch_in_epoch == 0 else round(run.epoch + run.batch_in_epoch / nb, 2)
        params = sum(q.numel() for q in run.model.parameters())
        acc = res.get("class_accuracy")
        # train.ema_decay: the scored weights are an average, possibly switched on at a resume.
        ema = json.loads(done.read_text()).get("ema") if done.is_file() else None
        averaged = ""
        if ema:
            since = f" from step {ema['from_step']:,}" if ema["from_step"] else ""
            averaged = f", weight average {ema['decay']:g}{since}"
        if name in runs and a.weights == "raw":
            averaged = ", last checkpoint without its weight average" if ema else ", last checkpoint"
        label = f"{name}-{a.label}" if a.label else name
        guided = f", guidance {sampling['guidance']:g}" if sampling.get("guidance") is not None else ""
        write_result(
            f"{ds.prefix}-{label}",
            {
                "name": label,
                "recipe": recipe,
                "summary": (
                    f"{recipe} ({cfg.model.name}, {params:,} params, {trained}"
                    + (f" of {cfg.train.epochs}" if trained != cfg.train.epochs else "")
                    + f" epochs{guided}{averaged}): Fréchet distance of "
                    f"{res['n_generated']:,} samples to {res['n_real']:,} test images in {ds.classifier} features"
                    + (f"; class accuracy {100 * acc:.1f}% (target ≥ 90%)" if acc is not None else "")
                ),
                "value": f"{res['frechet']:.2f}",
                "target": "≥ 90% class accuracy" if acc is not None else "–",
                "meets_target": (acc >= 0.9) if acc is not None else None,
                "epochs": trained,
                "overrides": recipe_changes(recipe, cfg) if name in runs else overrides,
                "weights": a.weights if name in runs else "final",
                "parameters": params,
                "train_seconds": round(train_seconds, 1) if train_seconds is not None else None,
                "ema": ema,
                **res,
            },
        )
        print(json.dumps(res), flush=True)
    summarize(ds)


if __name__ == "__main__":
    main()
