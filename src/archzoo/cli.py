"""The ``archzoo`` command: list, train, eval, predict, summary, sample, viz, inspect, find-batch, plot,
lr-find, tune, keras, export, data.

Data (tables, metrics as JSON, predictions) goes to stdout; messages go to
stderr. A user error (unknown name, bad option, corrupt file, NaN loss) prints
one sentence and exits with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from archzoo.errors import UserError

EXIT_USER = 2


def _err(msg: str) -> None:
    print(f"archzoo: error: {msg}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one sentence, not the usage dump
        _err(
            f"{message[0].upper()}{message[1:]}; see 'archzoo {self.prog.split()[-1] if ' ' in self.prog else ''} --help'.".replace(
                "  ", " "
            )
        )
        sys.exit(EXIT_USER)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="archzoo", description="Canonical neural architectures on real data, trained by one engine.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)

    s = sub.add_parser("list", help="list registered models, datasets, tasks or recipes")
    s.add_argument("what", nargs="?", default="recipes", choices=["models", "datasets", "tasks", "recipes"])
    s.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")

    s = sub.add_parser("train", help="train a recipe: archzoo train RECIPE [key.sub=value ...]")
    s.add_argument("recipe", nargs="?", help="a shipped recipe (archzoo list recipes)")
    s.add_argument("overrides", nargs="*", help="dotted overrides such as optim.lr=3e-3 train.epochs=5")
    s.add_argument("--config", help="a YAML config (e.g. RUN/config.yaml) applied over the recipe")
    s.add_argument("--resume", metavar="RUN", help="continue the run in directory RUN from its last checkpoint")
    s.add_argument("--run-dir", help="write the run here instead of runs/<recipe>/<timestamp>")
    s.add_argument("--data-dir", help="data root (else ARCHZOO_DATA, else a cache directory)")

    s = sub.add_parser("eval", help="evaluate a finished run's weights on a split")
    s.add_argument("run", help="run directory")
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.add_argument(
        "--tta",
        choices=["none", "flip"],
        help="test-time augmentation of a classification run: flip also scores each image mirrored and reports "
        "the averaged prediction as {split}/tta_* beside the plain figures (default: the run's task.args.tta)",
    )
    s.add_argument(
        "--weights",
        default="final",
        choices=["final", "best", "last", "raw"],
        help="which weights to load (last: the last checkpoint; raw: its weights without the average of train.ema_decay)",
    )
    s.add_argument("--data-dir")

    s = sub.add_parser(
        "predict", help="answer inputs with a trained run: archzoo predict RUN INPUT... [--OPTION VALUE]"
    )
    s.add_argument("run", help="run directory")
    s.add_argument("inputs", nargs="+", help="what the run's task reads: image files, text, ...")
    s.add_argument("--weights", default="final", choices=["final", "best", "last", "raw"])

    s = sub.add_parser("summary", help="layer table, parameter count and output shapes of a model or recipe")
    s.add_argument("name", help="a model (archzoo list models) or recipe")
    s.add_argument(
        "overrides", nargs="*", help="model builder arguments as key=value, or dotted overrides for a recipe"
    )
    s.add_argument("--input", help="input shape without batch, e.g. 1,28,28 (default: from the recipe's data)")
    s.add_argument("--data-dir")

    s = sub.add_parser("sample", help="draw samples from a generative run: archzoo sample RUN [--OPTION VALUE]")
    s.add_argument("run", help="run directory")
    s.add_argument("--out", help="output directory (default RUN/samples)")
    s.add_argument("--weights", default="final", choices=["final", "best", "last", "raw"])

    s = sub.add_parser("score", help="Fréchet distance (and class accuracy) of a generative run's samples")
    s.add_argument("run", help="a generative run directory")
    s.add_argument("--classifier", required=True, help="an image classifier run on the same data (e.g. fashion-cnn)")
    s.add_argument("--n", type=int, default=10_000, help="number of samples (default 10000)")
    s.add_argument("--batch-size", type=int, default=500)
    s.add_argument("--steps", type=int, help="sampling steps (diffusion: fewer steps use DDIM)")
    s.add_argument("--guidance", type=float, help="classifier-free guidance weight (conditional diffusion)")
    s.add_argument("--method", choices=["ddpm", "ddim"], help="diffusion sampler")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--data-dir")

    s = sub.add_parser("viz", help="visualise a trained run")
    vsub = s.add_subparsers(dest="viz_cmd", parser_class=_Parser)
    v = vsub.add_parser("features", help="feature maps of each stage for IMAGE, and the first layer's filters")
    v.add_argument("run", help="run directory")
    v.add_argument("image", help="an image file (PNG, JPEG, ...)")
    v.add_argument("--out", help="output directory (default RUN/features)")
    v = vsub.add_parser(
        "attention", help="the attention weights of a seq2seq run decoding INPUT, or of a ViT run on image INPUT"
    )
    v.add_argument("run", help="run directory")
    v.add_argument(
        "input",
        help="a source text, such as 'abcdef' or 'the 3rd of March, 2021'; for an image run (ViT), "
        "an image file or the index of a test image such as 0",
    )
    v.add_argument("--out", help="output directory (default RUN/attention)")
    v = vsub.add_parser("embeddings", help="the node embeddings of a node-classification run in 2-D, by class")
    v.add_argument("run", help="run directory")
    v.add_argument("--method", default="pca", choices=["pca", "tsne"], help="the 2-D projection (default pca)")
    v.add_argument("--out", help="output directory (default RUN/embeddings)")

    s = sub.add_parser(
        "lr-find",
        help="LR range test on a copy of a recipe's or run's model: archzoo lr-find RECIPE|RUN [key=value ...]",
    )
    s.add_argument("target", help="a recipe, or a run directory (its weights and optimizer state are only read)")
    s.add_argument("overrides", nargs="*", help="dotted overrides such as data.batch_size=128")
    s.add_argument("--slot", help="the optimizer to sweep (needed when the task has several, as a GAN)")
    s.add_argument("--steps", type=int, default=100, help="optimizer steps of the sweep (default 100)")
    s.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    s.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    s.add_argument("--loss", default="loss", help="the training log to record (default loss; a GAN: loss_d, loss_g)")
    s.add_argument("--out", help="the plot's path (default RUN/plots/lr_find.png, or lr_find-RECIPE.png)")
    s.add_argument("--apply", metavar="FILE", help="write the suggestion as an override YAML for train --config")
    s.add_argument(
        "--rule",
        default="auto",
        choices=["auto", "steepest", "minimum"],
        help="the suggestion: steepest descent, or where the loss stops falling (auto, the default: "
        "minimum for a onecycle schedule, whose lr is the peak, else steepest)",
    )
    s.add_argument("--data-dir")

    s = sub.add_parser("tune", help="Optuna search over a recipe's tune: space: archzoo tune RECIPE --trials N")
    s.add_argument("recipe", nargs="?", help="a recipe with a tune: section")
    s.add_argument("overrides", nargs="*", help="dotted overrides applied to every trial, e.g. train.epochs=3")
    s.add_argument("--trials", type=int, required=True, help="trials to run now, spread over the workers")
    s.add_argument("--storage", help="Optuna storage: sqlite:///study.db, journal:FILE, postgresql://... "
                   "(default journal:DIR/study.journal)")  # fmt: skip
    s.add_argument("--study", help="study name (default: the recipe's name); the same storage and name continue it")
    s.add_argument("--timeout", type=float, help="seconds after which no new trial starts")
    s.add_argument("--workers", type=int, default=1, help="processes sharing the study (default 1)")
    s.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    s.add_argument("--startup", type=int, default=5,
                   help="random trials before TPE, and trials before the median pruner prunes (default 5)")  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="TPE sampler seed (default 0)")
    s.add_argument("--dir", help="the study directory (default runs/tune/STUDY)")
    s.add_argument("--config", help="a YAML config applied over the recipe")
    s.add_argument("--data-dir")

    s = sub.add_parser(
        "inspect", help="gradient, weight, activation and data statistics of a run or recipe; or a gradient check"
    )
    s.add_argument("target", nargs="?", help="a run directory or a recipe")
    s.add_argument(
        "overrides", nargs="*", help="dotted overrides for a recipe; key=value layer arguments for --gradcheck"
    )
    s.add_argument(
        "--batches", type=int, default=1, help="training batches the gradients are averaged over (default 1)"
    )
    s.add_argument("--json", help="write the report here (default OUT/inspect.json)")
    s.add_argument("--out", help="folder of the data plot and the report (default RUN/inspect or runs/inspect/RECIPE)")
    s.add_argument("--weights", default="final", choices=["final", "best", "last", "raw"], help="a run's weights")
    s.add_argument(
        "--gradcheck",
        metavar="LAYER",
        help="numerical gradient check of a layer or registered model ('list' names them)",
    )
    s.add_argument("--data-dir")

    s = sub.add_parser("find-batch", help="the largest training batch of a recipe that fits a memory budget")
    s.add_argument("recipe", help="a shipped recipe")
    s.add_argument("overrides", nargs="*", help="dotted overrides such as model.args.width=64")
    s.add_argument(
        "--budget-mb", type=float, help="memory budget in MB (required on the CPU; default on a GPU: its memory)"
    )
    s.add_argument("--max-batch", type=int, default=65536, help="the largest batch probed (default 65536)")
    s.add_argument("--data-dir")

    s = sub.add_parser("plot", help="reference plots: activations, optimizers RECIPE, losses")
    psub = s.add_subparsers(dest="plot_cmd", parser_class=_Parser)
    v = psub.add_parser("activations", help="ReLU, Leaky ReLU, ELU, sigmoid, tanh, Swish and GELU with derivatives")
    v.add_argument("--out", default="activations.png", help="the PNG (default activations.png)")
    v = psub.add_parser("optimizers", help="a recipe's training loss per step under each optimizer")
    v.add_argument("recipe")
    v.add_argument("overrides", nargs="*", help="dotted overrides applied to every run (optim.lr=...)")
    v.add_argument("--steps", type=int, default=100, help="optimizer steps per run (default 100)")
    v.add_argument("--optimizers", default="sgd,momentum,rmsprop,adam,adamw,adagrad,nadam")
    v.add_argument("--out", default="optimizers.png", help="the PNG (default optimizers.png)")
    v.add_argument("--json", help="also write the loss of every step here")
    v.add_argument("--data-dir")
    v = psub.add_parser("losses", help="MSE, L1, Huber, BCE, CE, NLL, hinge and KL against the prediction")
    v.add_argument("--out", default="losses.png", help="the PNG (default losses.png)")

    s = sub.add_parser("data", help="dataset utilities")
    dsub = s.add_subparsers(dest="data_cmd", parser_class=_Parser)
    d = dsub.add_parser("download", help="download a dataset where a network exists (checksums verified)")
    d.add_argument("name")
    d.add_argument("--data-dir")
    d.add_argument("--base-url", help="mirror to download from")
    d = dsub.add_parser("where", help="print the data root that would be used")
    d.add_argument("--data-dir")

    s = sub.add_parser("export", help="export a run's model as ONNX, a torch.export program or safetensors, checked")
    s.add_argument("run", help="run directory")
    s.add_argument("--format", required=True, choices=["onnx", "torch-export", "safetensors"], dest="fmt")
    s.add_argument(
        "--out", help="the file (a folder for safetensors); default RUN/export/model.onnx, model.pt2 or safetensors/"
    )
    s.add_argument("--batch", type=int, help="examples to export with (nodes of a graph); checked at another count")
    s.add_argument("--weights", default="final", choices=["final", "best", "last"], help="which weights to export")
    s.add_argument("--data-dir", help="data root for the sample inputs (else ARCHZOO_DATA, else a cache directory)")

    s = sub.add_parser("keras", help="train an MLP or small-CNN recipe as a Keras 3 model (torch backend)")
    s.add_argument("recipe", help="a recipe whose model is mlp, mlp_large, convnet or convnet_small")
    s.add_argument("overrides", nargs="*", help="dotted overrides such as train.epochs=5")
    s.add_argument("--api", default="sequential", choices=["sequential", "functional"])
    s.add_argument("--run-dir", help="write the run here instead of runs/<recipe>-keras/<timestamp>")
    s.add_argument("--data-dir", help="data root (else ARCHZOO_DATA, else a cache directory)")

    s = sub.add_parser("report", help="write a run's self-contained HTML report (RUN/report.html)")
    s.add_argument("run", help="run directory")
    s.add_argument("--out", help="write the page here instead of RUN/report.html")
    s.add_argument("--no-maps", action="store_true", help="draw no new feature, attention or embedding maps")

    s = sub.add_parser("runs", help="a table of runs: archzoo runs [--recipe R]; archzoo runs compare RUN RUN ...")
    s.add_argument("args", nargs="*", metavar="compare RUN", help="'compare' and two or more run directories")
    s.add_argument("--dir", default="runs", help="where to look for runs (default runs/)")
    s.add_argument("--recipe", help="only the runs of this recipe")
    s.add_argument("--json", action="store_true", help="print the rows as JSON")
    s.add_argument("--out", default="runs/compare", help="folder of the comparison plots (runs compare)")
    return p


# ----------------------------------------------------------------------------- commands


def cmd_list(a: argparse.Namespace) -> int:
    from archzoo import registry

    fn = {
        "models": registry.list_models,
        "datasets": registry.list_datasets,
        "tasks": registry.list_tasks,
        "recipes": registry.list_recipes,
    }[a.what]
    for name in fn(a.pattern):
        if a.what == "recipes":
            from archzoo.config import recipe_dict

            print(f"{name:<24} {recipe_dict(name).get('description', '')}")
        else:
            print(name)
    return 0


def _split_args(recipe: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """``archzoo train optim.lr=1 --config x`` has no recipe: a first word with '=' is an override."""
    if recipe and "=" in recipe:
        return None, [recipe, *overrides]
    return recipe, overrides


def cmd_train(a: argparse.Namespace) -> int:
    from archzoo.config import load_config
    from archzoo.engine.trainer import Trainer

    recipe, overrides = _split_args(a.recipe, a.overrides)
    if a.resume:
        run = Path(a.resume)
        if recipe or a.config or a.run_dir:
            extra = "a recipe" if recipe else "--config" if a.config else "--run-dir"
            raise UserError(
                f"--resume continues {run} with the config saved there; it takes key=value overrides, not {extra}."
            )
        if not (run / "config.yaml").is_file():
            raise UserError(f"{run} is not a run directory (it has no config.yaml).")
        cfg = load_config(None, run / "config.yaml", overrides)
        trainer = Trainer(cfg, run_dir=run, resume=True, data_dir=a.data_dir)
    else:
        if not recipe and not a.config:
            raise UserError("Name a recipe (archzoo list recipes) or pass --config FILE.")
        cfg = load_config(recipe, a.config, overrides)
        trainer = Trainer(cfg, run_dir=Path(a.run_dir) if a.run_dir else None, data_dir=a.data_dir)
    try:
        results = trainer.fit()
    except BaseException as e:
        if not trainer.dist.enabled:
            raise
        from archzoo.engine.distributed import fail_rank

        fail_rank(trainer.dist, e, isinstance(e, UserError))  # exits non-zero; never reaches the os._exit(0) below
    if trainer.dist.is_main:
        print(json.dumps({"run_dir": str(trainer.run_dir), **results}, indent=2))
        main_metric = next((k for k in ("test/acc", "test/rmse", "test/loss") if k in results), None)
        if main_metric:
            print(f"{main_metric} = {results[main_metric]:.4f}; run written to {trainer.run_dir}", file=sys.stderr)
    from archzoo.engine.distributed import shutdown

    shutdown(trainer.dist)
    if trainer.dist.enabled:
        # Under torchrun, leave without interpreter finalisation: gloo's worker threads can abort the
        # process (SIGABRT) while Python tears down. Everything is written and closed by now, and only
        # a successful fit() gets here (a failure left through fail_rank above, with a non-zero status).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def load_run(run: str, data_dir: str | None, weights: str = "final") -> Any:
    from archzoo.engine.run import load_run as _load

    return _load(run, data_dir, weights)


def cmd_eval(a: argparse.Namespace) -> int:
    run = load_run(a.run, a.data_dir, a.weights)
    if a.tta is not None:
        set_tta = getattr(run.task, "set_tta", None)
        if set_tta is None:
            raise UserError(f"--tta applies to classification runs, and this run's task is '{run.cfg.task.name}'.")
        set_tta(a.tta, run.info)
    print(json.dumps(run.evaluate(a.split), indent=2))
    return 0


def task_options(declared: dict[str, Any], extra: list[str], what: str) -> dict[str, Any]:
    """Parse ``--name VALUE`` pairs against the options a task declares; refuse any other."""
    out = {k.replace("-", "_"): o.default for k, o in declared.items()}
    names = {k.replace("_", "-"): k for k in declared}
    i = 0
    while i < len(extra):
        item = extra[i]
        if not item.startswith("--"):
            raise UserError(f"Unexpected argument '{item}' for archzoo {what}.")
        key, _, value = item[2:].partition("=")
        if key not in names:
            known = ", ".join(f"--{n}" for n in names) or "none"
            raise UserError(f"This run's task does not take --{key} for archzoo {what}; it takes: {known}.")
        if not value:
            if i + 1 >= len(extra):
                raise UserError(f"--{key} needs a value.")
            i += 1
            value = extra[i]
        option = declared[names[key]]
        try:
            out[names[key].replace("-", "_")] = option.type(value)
        except ValueError:
            raise UserError(f"--{key} must be a {option.type.__name__}, got '{value}'.") from None
        i += 1
    return out


def cmd_predict(a: argparse.Namespace, extra: list[str]) -> int:
    import torch

    run = load_run(a.run, None, a.weights)
    options = task_options(run.task.predict_options, extra, "predict")
    batch = run.task.read_inputs(a.inputs, run.info)
    from archzoo.tasks.base import to_device

    with torch.no_grad():
        outputs = run.task.predict(run.model, to_device(batch, run.device))
    for line in run.task.describe(outputs, a.inputs, run.info, **options):
        print(line)
    return 0


def cmd_summary(a: argparse.Namespace) -> int:
    """A layer table of a model (built from key=value arguments) or of a recipe's model (from its data)."""
    import torch
    import yaml

    from archzoo.config import load_config, recipe_names
    from archzoo.engine.builders import accepted, build_data, build_model
    from archzoo.registry import MODELS, create_model
    from archzoo.viz.summary import format_table, parse_shape

    shape = parse_shape(a.input) if a.input else None
    info: dict[str, Any] = {}
    if a.name in recipe_names():
        cfg = load_config(a.name, None, a.overrides)
        if shape is None:
            info = build_data(cfg, a.data_dir).info
        model = build_model(cfg, info)
        title = f"{a.name} ({cfg.model.name})"
    else:
        kwargs: dict[str, Any] = {}
        for item in a.overrides:
            if "=" not in item:
                raise UserError(f"Model argument '{item}' must look like key=value.")
            k, _, v = item.partition("=")
            kwargs[k] = yaml.safe_load(v)
        if shape is not None and len(shape) == 3:
            # An image input says the channels and the size the model is built for, unless set.
            takes = accepted(MODELS.get(a.name))
            if "in_channels" in takes:
                kwargs.setdefault("in_channels", shape[0])
            if "image_size" in takes:
                kwargs.setdefault("image_size", shape[1])
        model = create_model(a.name, **kwargs)
        title = a.name
    if shape is None and "image_size" in info:
        size = info["image_size"]
        h, w = (size, size) if isinstance(size, int) else size
        shape = (info.get("in_channels", 1), h, w)
    elif shape is None and "in_features" in info:
        shape = (info["in_features"],)
    # Without a shape, the model's own example input (token ids, graph batches, images at its size).
    x: Any = torch.randn(2, *shape) if shape else model.example_input(2)
    print(format_table(model, title, x))
    return 0


def cmd_sample(a: argparse.Namespace, extra: list[str]) -> int:
    run = load_run(a.run, None, a.weights)
    options = task_options(run.task.sample_options, extra, "sample")
    from archzoo.viz.sampling import draw_outputs

    out = Path(a.out) if a.out else run.run_dir / "samples"
    for p in draw_outputs(run.task.sample(run, out, **options)):
        print(p)
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from archzoo.scoring import score_run

    if a.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {a.batch_size}.")
    run = load_run(a.run, a.data_dir)
    classifier = load_run(a.classifier, a.data_dir)
    print(json.dumps(score_run(run, classifier, a.n, a.batch_size, a.steps, a.guidance, a.method, a.seed), indent=2))
    return 0


def cmd_viz(a: argparse.Namespace) -> int:
    if a.viz_cmd == "attention":
        from archzoo.viz.attention import viz_attention, viz_image_attention

        run = load_run(a.run, None)
        if run.info.get("kind") == "image":  # a ViT: the class token's attention per layer and head
            for p in viz_image_attention(run, a.input, Path(a.out) if a.out else None):
                print(p)
            return 0
        print(viz_attention(run, a.input, Path(a.out) if a.out else None))
        return 0
    if a.viz_cmd == "embeddings":
        from archzoo.viz.embeddings import viz_embeddings

        print(viz_embeddings(load_run(a.run, None), a.method, Path(a.out) if a.out else None))
        return 0
    if a.viz_cmd != "features":
        raise UserError(
            "Use 'archzoo viz features RUN IMAGE [--out DIR]', 'archzoo viz attention RUN INPUT' "
            "or 'archzoo viz embeddings RUN [--method pca|tsne]'."
        )
    from archzoo.viz.features import viz_features

    run = load_run(a.run, None)
    for p in viz_features(run, a.image, Path(a.out) if a.out else None):
        print(p)
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    if a.data_cmd == "where":
        from archzoo.data.root import data_root

        print(data_root(a.data_dir))
        return 0
    if a.data_cmd == "download":
        from archzoo.data.download import download_dataset

        path = download_dataset(a.name, a.data_dir, a.base_url)
        print(path)
        return 0
    raise UserError("Use 'archzoo data download NAME' or 'archzoo data where'.")


def cmd_lr_find(a: argparse.Namespace) -> int:
    from archzoo.engine.lr_finder import lr_find_command

    summary = lr_find_command(a.target, a.overrides, a.slot, a.steps, a.start, a.end, a.out, a.apply, a.loss,
                              a.data_dir, rule=a.rule)  # fmt: skip
    print(json.dumps(summary, indent=2))
    print(
        f"suggested lr {summary['suggested_lr']:.3g} ({summary['slot']}, {summary['rule']}: steepest "
        f"{summary['steepest_lr']:.3g}, minimum {summary['minimum_lr']:.3g}); plot {summary['plot']}",
        file=sys.stderr,
    )
    return 0


def cmd_tune(a: argparse.Namespace) -> int:
    from archzoo.engine.tuning import tune

    recipe, overrides = _split_args(a.recipe, a.overrides)
    if not recipe and not a.config:
        raise UserError("Name a recipe with a tune: section (archzoo list recipes) or pass --config FILE.")
    summary = tune(recipe, a.trials, a.storage, a.study, a.timeout, a.workers, a.pruner, overrides, a.config, a.dir,
                   a.data_dir, a.seed, a.startup)  # fmt: skip
    print(json.dumps(summary, indent=2))
    best = summary["best"]
    if best:
        print(f"best trial {best['number']}: {summary['metric']} = {best['value']:.4f}; "
              f"train it with: archzoo train {summary['recipe']} --config {best['override_file']}", file=sys.stderr)  # fmt: skip
    return 0


def cmd_keras(a: argparse.Namespace) -> int:
    from archzoo.interop.keras3 import get_keras, keras_config, train_keras

    get_keras()  # refuses another backend or a missing install before any data is read
    cfg, replaced = keras_config(a.recipe, a.overrides)
    for key, old in replaced.items():
        new = cfg.optim.scheduler if key == "optim.scheduler" else cfg.train.early_stopping
        print(
            f"archzoo keras: the recipe's {key}={old} becomes {new} (Keras callbacks); set {key} to choose.",
            file=sys.stderr,
        )
    results = train_keras(cfg, a.api, a.run_dir, a.data_dir, replaced)
    print(json.dumps(results, indent=2))
    main_metric = next((k for k in ("test/acc", "test/rmse", "test/loss") if k in results), None)
    if main_metric:
        print(f"{main_metric} = {results[main_metric]:.4f}; run written to {results['run_dir']}", file=sys.stderr)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from archzoo.export import export_run

    print(json.dumps(export_run(load_run(a.run, a.data_dir, a.weights), a.fmt, a.out, a.batch), indent=2))
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    from archzoo.engine import inspection as ins

    if a.gradcheck:
        return _gradcheck(a)
    target, overrides = a.target, a.overrides
    if not target:
        raise UserError("Name a run directory or a recipe to inspect, or pass --gradcheck LAYER.")
    if "=" in target:
        raise UserError(f"'{target}' is an override; name a run directory or a recipe first.")
    t = ins.open_target(target, overrides, a.data_dir, a.weights)
    report = ins.inspect(t, a.batches)
    if a.out:
        out = Path(a.out)
    elif t.run_dir is not None:
        out = t.run_dir / "inspect"
    else:
        out = Path(t.cfg.log.dir) / "inspect" / t.name
    png = ins.plot_data_check(report["data"], out / "data.png", f"{t.name}: training split")
    js = ins.write_report(report, Path(a.json) if a.json else out / "inspect.json")
    print(ins.format_report(report))
    print(f"wrote {js} and {png}", file=sys.stderr)
    return 0


def _gradcheck(a: argparse.Namespace) -> int:
    import yaml

    from archzoo.engine import inspection as ins

    items = [x for x in [a.target, *a.overrides] if x]
    if a.batches != 1 or a.out or a.weights != "final" or a.data_dir:
        raise UserError("--gradcheck takes key=value layer arguments and --json only.")
    if a.gradcheck == "list":
        if items:
            raise UserError("--gradcheck list takes no arguments.")
        for name in ins.gradcheck_names():
            print(name)
        return 0
    kwargs: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"Layer argument '{item}' must look like key=value.")
        k, _, v = item.partition("=")
        kwargs[k] = yaml.safe_load(v)
    r = ins.gradcheck(a.gradcheck, kwargs)
    if a.json:
        ins.write_report(r, Path(a.json))
    print(json.dumps(r, indent=2))
    if not r["passed"]:
        print(f"gradient check of {a.gradcheck} failed: {r['error']}", file=sys.stderr)
        return 1
    return 0


def cmd_find_batch(a: argparse.Namespace) -> int:
    from archzoo.engine.find_batch import find_batch, format_result

    r = find_batch(a.recipe, a.overrides, a.budget_mb, a.max_batch, a.data_dir)
    print(format_result(r))
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from archzoo.viz import reference as ref

    if a.plot_cmd == "activations":
        print(ref.plot_activations(Path(a.out)))
        return 0
    if a.plot_cmd == "losses":
        print(ref.plot_losses(Path(a.out)))
        return 0
    if a.plot_cmd == "optimizers":
        names = ref.parse_optimizers(a.optimizers)
        curves = ref.optimizer_curves(a.recipe, a.overrides, names, a.steps, a.data_dir)
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps({"recipe": a.recipe, "steps": a.steps, "losses": curves}, indent=1))
        print(ref.plot_optimizers(curves, Path(a.out), f"{a.recipe}: training loss per step"))
        return 0
    raise UserError("Use 'archzoo plot activations', 'archzoo plot optimizers RECIPE' or 'archzoo plot losses'.")


def cmd_report(a: argparse.Namespace) -> int:
    from archzoo.report import write_report

    print(write_report(Path(a.run), Path(a.out) if a.out else None, maps=not a.no_maps))
    return 0


def cmd_runs(a: argparse.Namespace) -> int:
    from archzoo import runs

    if a.args and a.args[0] == "compare":
        if a.recipe or a.json:
            raise UserError("archzoo runs compare takes run directories and --out only.")
        for p in runs.compare_runs([Path(r) for r in a.args[1:]], Path(a.out)):
            print(p)
        return 0
    if a.args:
        raise UserError(
            f"Unknown runs command '{a.args[0]}'; use 'archzoo runs [--recipe R]' or 'archzoo runs compare A B'."
        )
    rows = [runs.describe_run(rd) for rd in runs.find_runs(Path(a.dir), a.recipe)]
    if a.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"No runs under {a.dir}" + (f" for recipe {a.recipe}" if a.recipe else "") + ".", file=sys.stderr)
    else:
        print(runs.runs_table(rows))
    return 0


COMMANDS = {
    "list": cmd_list,
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "summary": cmd_summary,
    "data": cmd_data,
    "sample": cmd_sample,
    "score": cmd_score,
    "viz": cmd_viz,
    "lr-find": cmd_lr_find,
    "tune": cmd_tune,
    "keras": cmd_keras,
    "export": cmd_export,
    "inspect": cmd_inspect,
    "find-batch": cmd_find_batch,
    "plot": cmd_plot,
    "report": cmd_report,
    "runs": cmd_runs,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    a, extra = parser.parse_known_args(argv)
    if extra and a.cmd in ("tune", "lr-find") and not any(x.startswith("-") for x in extra):
        a.overrides, extra = [*a.overrides, *extra], []  # key=value overrides after the options
    if extra and a.cmd not in ("predict", "sample"):
        parser.parse_args(argv)  # refuses the unknown arguments in one sentence
    if a.version:
        from archzoo import __version__

        print(__version__)
        return 0
    if not a.cmd:
        parser.print_help(sys.stderr)
        return EXIT_USER
    try:
        if a.cmd in ("predict", "sample"):
            return COMMANDS[a.cmd](a, extra)  # the run's task declares the options these take
        return COMMANDS[a.cmd](a)
    except UserError as e:
        _err(str(e))
        return EXIT_USER
    except KeyboardInterrupt:
        _err("Interrupted; the last checkpoint is kept (resume with 'archzoo train --resume RUN').")
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
